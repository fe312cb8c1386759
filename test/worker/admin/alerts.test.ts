/**
 * The alert cron against the receiver stand-in over real HTTP: one message
 * per new condition, none while it persists within the repeat interval, a
 * "resolved" when it clears, and a receiver that fails or hangs costs a
 * bounded wait and is tried again at the next run.
 */
import { createScheduledController } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { ledgerAlertStub } from "../../../src/admin/alerts/ledger-alert.ts";
import { ALERT_CRON, forgetLedgerState, runAlerts } from "../../../src/admin/alerts/run.ts";
import { recentAlerts } from "../../../src/admin/alerts/store.ts";
import worker from "../../../src/index.ts";
import type { Env } from "../../../src/shared/env.ts";
import {
  addDeadLetter,
  alertWebhook,
  clearAlertTables,
  count,
  createStalledMailboxesTable,
  ledger,
  minutes,
  receiver,
  unreachableLedger,
} from "../helpers/alerts.ts";
import { baseEnv } from "../helpers/env.ts";
import { capturingLogs } from "../helpers/fuzz.ts";

const T0 = new Date("2030-03-01T10:00:00.000Z");
const at = (offsetMinutes: number) => new Date(T0.getTime() + minutes(offsetMinutes));

const texts = async (key: string) => (await receiver.calls(key)).map((call) => (call.body as { text: string }).text);

async function envWithWebhook(extra: Partial<Env> = {}) {
  const hook = await alertWebhook();
  const env: Env = {
    ...baseEnv,
    ALERT_WEBHOOK_URL: hook.url,
    ALERT_REPEAT_MINUTES: "60",
    PUBLIC_URL: "https://bridge.example.com",
    ...extra,
  };
  return { env, key: hook.key };
}

/** The cron as the runtime calls it, at `time`. */
const cron = (env: Env, time: Date) =>
  worker.scheduled(createScheduledController({ cron: ALERT_CRON, scheduledTime: time.getTime() }), env);

beforeEach(async () => {
  await clearAlertTables();
  forgetLedgerState();
  await ledgerAlertStub(baseEnv)?.write(null);
});

describe("dead letters", () => {
  it("alert once; a second letter within the repeat interval sends nothing; a later one sends a new alert", async () => {
    const { env, key } = await envWithWebhook();
    await addDeadLetter("dl-1", at(-1));
    await cron(env, at(0));
    const first = await texts(key);
    expect(first).toHaveLength(1);
    expect(first[0]).toContain("1 new dead letter since the last alert");
    // The console's list, filtered to the new letters: since the oldest of them.
    const since = encodeURIComponent(at(-1).toISOString());
    expect(first[0]).toContain(`https://bridge.example.com/admin?since=${since}#dead-letters`);

    await addDeadLetter("dl-2", at(10));
    await cron(env, at(15));
    expect(await texts(key)).toHaveLength(1);

    await addDeadLetter("dl-3", at(70));
    await cron(env, at(75));
    const after = await texts(key);
    expect(after).toHaveLength(2);
    expect(after[1]).toContain("2 new dead letters since the last alert");
  });

  it("says resolved once no dead letter is left, and only once", async () => {
    const { env, key } = await envWithWebhook();
    await addDeadLetter("dl-r", at(-1));
    await cron(env, at(0));
    await ledger().prepare("DELETE FROM dead_letters").run();
    await cron(env, at(5));
    await cron(env, at(10));
    const sent = await texts(key);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toContain("Resolved: no dead letters are left");
  });

  it("names the queues and the top reasons, with emails fingerprinted and mentions defused", async () => {
    const { env, key } = await envWithWebhook();
    await addDeadLetter("dl-a", at(-2), "Vero answered 400: email jane@example.com is invalid");
    await addDeadLetter("dl-b", at(-1), "@everyone <b>bold</b> & more");
    await cron(env, at(0));
    const [text] = await texts(key);
    expect(text).toContain("queues: vero (2)");
    expect(text).toContain("fp:");
    expect(text).not.toContain("jane@example.com");
    expect(text).not.toMatch(/[<>&@]/);
  });

  it("is listed among the last alerts sent, for the console", async () => {
    const { env } = await envWithWebhook();
    await addDeadLetter("dl-log", at(-1));
    await cron(env, at(0));
    const [logged] = await recentAlerts(ledger());
    expect(logged).toMatchObject({ condition: "dead-letters", kind: "alert", delivered: true, status: 200 });
  });
});

describe("the 15-minute failure rate", () => {
  it("alerts when a direction fails above the threshold, and resolves once the window is clean", async () => {
    const { env, key } = await envWithWebhook({ ALERT_FAILURE_RATE: "0.5", ALERT_MIN_ATTEMPTS: "10" });
    await count("outbound", "retried", 8, at(-6));
    await count("outbound", "delivered", 4, at(-3));
    await count("inbound", "delivered", 50, at(-3));
    await cron(env, at(0));
    const first = await texts(key);
    expect(first).toHaveLength(1);
    expect(first[0]).toContain("Outbound (Segment → Vero): 67% of deliveries failed");

    await count("outbound", "delivered", 30, at(22));
    await cron(env, at(25));
    const after = await texts(key);
    expect(after).toHaveLength(2);
    expect(after[1]).toContain("Resolved: outbound deliveries no longer fail");
  });

  it("stays quiet below the threshold, and below the fewest attempts", async () => {
    const { env, key } = await envWithWebhook({ ALERT_FAILURE_RATE: "0.5", ALERT_MIN_ATTEMPTS: "10" });
    await count("outbound", "retried", 4, at(-3));
    await count("outbound", "delivered", 6, at(-3));
    await count("inbound", "retried", 5, at(-3));
    await cron(env, at(0));
    expect(await texts(key)).toEqual([]);
  });

  it("sends a persisting rate again only past the repeat interval", async () => {
    const { env, key } = await envWithWebhook({ ALERT_MIN_ATTEMPTS: "1" });
    for (const minute of [0, 5, 60, 65]) {
      await count("inbound", "retried", 5, at(minute - 1));
      await cron(env, at(minute));
    }
    const sent = await texts(key);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatch(/^\[vero-segment-bridge\] 🔴 Still Inbound/);
  });
});

describe("stalled mailboxes", () => {
  it("alerts on a mailbox whose oldest job waits past the threshold", async () => {
    await createStalledMailboxesTable();
    const { env, key } = await envWithWebhook({ ALERT_STALLED_MINUTES: "30" });
    await ledger()
      .prepare("INSERT INTO stalled_mailboxes VALUES ('a1b2', ?1, ?1, 'Vero answered 503', ?1)")
      .bind(at(-45).toISOString())
      .run();
    await ledger()
      .prepare("INSERT INTO stalled_mailboxes VALUES ('c3d4', ?1, ?1, 'Vero answered 503', ?1)")
      .bind(at(-5).toISOString())
      .run();
    await cron(env, at(0));
    const [text] = await texts(key);
    expect(text).toContain("1 user's deliveries stalled for over 30 minutes");
    expect(text).toContain(`oldest pending since ${at(-45).toISOString()}`);
  });

  it("reads a ledger without the mailboxes' table as none stalled", async () => {
    const { env, key } = await envWithWebhook();
    const run = await runAlerts(env, at(0));
    expect(run.sent).toEqual([]);
    expect(await texts(key)).toEqual([]);
  });
});

describe("the ledger unreachable", () => {
  it("alerts once while it stays down within the repeat interval, and resolves when it answers again", async () => {
    const { env, key } = await envWithWebhook();
    await cron({ ...env, LEDGER: unreachableLedger() }, at(0));
    await cron({ ...env, LEDGER: unreachableLedger() }, at(5));
    expect(await texts(key)).toHaveLength(1);
    expect((await texts(key))[0]).toContain("The ledger (D1 binding LEDGER) cannot be read");
    await cron(env, at(10));
    const sent = await texts(key);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toContain("Resolved: the ledger (D1) can be read again");
  });
});

describe("the ledger unreachable, across isolates", () => {
  it("is told once and resolved once when each cron run lands on a new isolate (state in the LEDGER_ALERT object)", async () => {
    const { env, key } = await envWithWebhook();
    const down = { ...env, LEDGER: unreachableLedger() };
    await cron(down, at(0));
    forgetLedgerState();
    await cron(down, at(5));
    forgetLedgerState();
    await cron(down, at(10));
    expect(await texts(key)).toHaveLength(1);
    forgetLedgerState();
    await cron(env, at(15));
    forgetLedgerState();
    await cron(env, at(20));
    const sent = await texts(key);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toContain("Resolved: the ledger (D1) can be read again");
  });

  it("without the LEDGER_ALERT binding, an isolate still remembers what it told", async () => {
    const { env, key } = await envWithWebhook({ LEDGER_ALERT: undefined });
    await cron({ ...env, LEDGER: unreachableLedger() }, at(0));
    await cron({ ...env, LEDGER: unreachableLedger() }, at(5));
    await cron(env, at(10));
    expect((await texts(key)).map((text) => text.split("\n")[0])).toEqual([
      expect.stringContaining("The ledger (D1 binding LEDGER) cannot be read"),
      expect.stringContaining("Resolved: the ledger (D1) can be read again"),
    ]);
  });
});

describe("a receiver that fails", () => {
  it("refusing: the cron completes, logs it, and the next run sends the alert", async () => {
    const { env, key } = await envWithWebhook();
    await addDeadLetter("dl-f", at(-1));
    await receiver.fail(key, { status: 500, times: 1 });
    const { lines } = await capturingLogs(() => cron(env, at(0)));
    expect(lines.some((line) => line.includes("alert receiver refused an alert"))).toBe(true);
    expect(lines.join("\n")).not.toContain(key);
    const [failed] = await recentAlerts(ledger());
    expect(failed).toMatchObject({ delivered: false, status: 500 });
    await cron(env, at(5));
    const calls = await receiver.calls(key);
    expect(calls.map((call) => call.status)).toEqual([500, 200]);
  });

  it("closing the connection unanswered: the cron completes and the next run sends it", async () => {
    const { env, key } = await envWithWebhook();
    await addDeadLetter("dl-d", at(-1));
    await receiver.fail(key, { drop: 1 });
    const { lines } = await capturingLogs(() => cron(env, at(0)));
    expect(lines.some((line) => line.includes("alert receiver could not be reached"))).toBe(true);
    await cron(env, at(5));
    expect((await receiver.calls(key)).map((call) => call.status)).toEqual([0, 200]);
  });

  it("hanging: the cron gives up after its bounded wait, never naming the URL, and the next run sends", async () => {
    const { env, key } = await envWithWebhook();
    await addDeadLetter("dl-h", at(-1));
    await receiver.fail(key, { delayMs: 7_000, times: 1, status: 200 });
    const { lines } = await capturingLogs(() => cron(env, at(0)));
    const line = lines.find((text) => text.includes("alert receiver could not be reached")) ?? "";
    expect(line).toContain("TimeoutError");
    expect(line).toContain(new URL(receiver.origin).host);
    expect(line).not.toContain(key);
    await receiver.heal(key);
    await cron(env, at(5));
    const [logged] = await recentAlerts(ledger());
    expect(logged).toMatchObject({ delivered: true, status: 200 });
  }, 30_000);
});

describe("without ALERT_WEBHOOK_URL", () => {
  it("sends nothing and remembers nothing", async () => {
    const hook = await alertWebhook();
    await addDeadLetter("dl-off", at(-1));
    await count("outbound", "retried", 100, at(-1));
    const run = await runAlerts({ ...baseEnv, ALERT_WEBHOOK_URL: undefined }, at(0));
    expect(run.sent).toEqual([]);
    expect(await receiver.calls(hook.key)).toEqual([]);
    expect(await recentAlerts(ledger())).toEqual([]);
  });
});
