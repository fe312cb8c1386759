/**
 * The mailbox per Vero user (a Durable Object with SQLite storage and an
 * alarm), fed through the routes without a queue and through the Vero
 * queue's consumer, delivering to the Vero stand-in over real HTTP.
 * Retries run with the schedule's real jitter; QUEUE_RETRY_BASE_SECONDS=1
 * (the least allowed) keeps its delays to seconds, and a test waits for the
 * calls, not for a time.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { createHash } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { devBindings } from "../../../dev/dev-settings.ts";
import type { RecordedCall } from "../../../dev/stand-ins/client.ts";
import { redriveDeadLetter } from "../../../src/admin/redrive.ts";
import type { CountReport } from "../../../src/delivery/counter-shard.ts";
import { getDeadLetter, listDeadLetters, storeDeadLetters } from "../../../src/delivery/dead-letters.ts";
import { QUEUE_NAMES } from "../../../src/delivery/settlement.ts";
import type { VeroJob } from "../../../src/outbound/job.ts";
import { MAILBOX_MAX_JOBS, type Mailbox, RETRY_LATER_MS, upgrade } from "../../../src/outbound/mailbox.ts";
import { mailboxConfigFor, mailboxFor } from "../../../src/outbound/mailboxes.ts";
import type { Env } from "../../../src/shared/env.ts";
import { isolatedEnv, postApi, vero } from "../helpers/env.ts";
import { deadLetterFor, runBatch, trackJob, unique, veroJob } from "../helpers/queue.ts";

const fast = { QUEUE_RETRY_BASE_SECONDS: "1" };
/** How long counts wait for their report in the tests' settings (COUNTS_REPORT_SECONDS). */
const REPORT_MS = Number(devBindings("", "").COUNTS_REPORT_SECONDS) * 1000;

const track = (user: string, event: string, messageId = unique("m")) => ({
  type: "track",
  messageId,
  userId: user,
  event,
});

/** Vero's accepted events/track calls, as "user event". */
const delivered = (calls: RecordedCall[]) =>
  calls
    .filter((call) => call.status < 300 && call.path.endsWith("/events/track"))
    .map((call) => {
      const body = call.body as { identity: { id: string }; event_name: string };
      return `${body.identity.id} ${body.event_name}`;
    });

const stub = (env: Env, user: string) => {
  const ready = mailboxConfigFor(env);
  if (!ready.ok) throw new Error(ready.reason);
  return mailboxFor(env, ready.config, user);
};

/** What a mailbox holds, by messageId, in delivery order. */
const held = (env: Env, user: string) =>
  runInDurableObject(stub(env, user), (_instance: Mailbox, state) =>
    state.storage.sql
      .exec<{ message_id: string }>("SELECT message_id FROM jobs ORDER BY at, rseq, seq")
      .toArray()
      .map((row) => row.message_id),
  );

/** The mailbox's instance runs with `workerEnv`, as when the Worker's own bindings change (the object keeps them). */
const withMailboxEnv = (mailbox: DurableObjectStub<Mailbox>, workerEnv: Env) =>
  runInDurableObject(mailbox, (instance: Mailbox) => {
    (instance as unknown as { env: Env }).env = workerEnv;
  });

/** A D1 that refuses every statement, as during an outage. */
const brokenD1 = {
  prepare: () => {
    throw new Error("D1_ERROR: the database is unavailable");
  },
} as unknown as D1Database;

/** The dead letters the mailbox keeps until D1 has them. */
const keptLetters = (mailbox: DurableObjectStub<Mailbox>) =>
  runInDurableObject(mailbox, (_instance: Mailbox, state) =>
    state.storage.sql
      .exec<{ id: string }>("SELECT id FROM letters")
      .toArray()
      .map((row) => row.id),
  );

/** The held jobs are due now: the test moves their clock instead of waiting for their retry. */
const makeDue = (mailbox: DurableObjectStub<Mailbox>) =>
  runInDurableObject(mailbox, (_instance: Mailbox, state) => state.storage.sql.exec("UPDATE jobs SET next_at = 0"));

/** The mailbox's alarm, and when its (one) held job is due. */
const alarmAndDue = (mailbox: DurableObjectStub<Mailbox>) =>
  runInDurableObject(mailbox, async (_instance: Mailbox, state) => ({
    alarm: await state.storage.getAlarm(),
    due: state.storage.sql.exec<{ next_at: number }>("SELECT next_at FROM jobs").toArray()[0]?.next_at,
  }));

/** The mailbox's row in D1's stalled_mailboxes, or null. */
const stalledRow = (env: Env, mailbox: DurableObjectStub<Mailbox>) =>
  (env.LEDGER as D1Database)
    .prepare("SELECT mailbox, reason FROM stalled_mailboxes WHERE mailbox = ?1")
    .bind(mailbox.id.toString())
    .first<{ mailbox: string; reason: string }>();

// Each test waits for real deliveries by the mailboxes' alarms, on a machine shared with other runs.
describe("a user's mailbox", { timeout: 60_000 }, () => {
  it("delivers a user's 6 events in order when the first call fails twice", async () => {
    const { env, veroToken } = await isolatedEnv(fast);
    const user = unique("u");
    await vero.fail(veroToken, { status: 500, times: 2 });
    const response = await postApi(env, "batch", {
      batch: [1, 2, 3, 4, 5, 6].map((n) => track(user, `e${n}`)),
    });
    expect(response.status, await response.clone().text()).toBe(200);
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length === 6);
    expect(calls.filter((call) => call.status === 500)).toHaveLength(2);
    expect(delivered(calls)).toEqual([1, 2, 3, 4, 5, 6].map((n) => `${user} e${n}`));
  });

  it("40 users x 6 events with 20 % of Vero calls failing (500 or 429): every event arrives once, each user's in order", async () => {
    const { env, veroToken } = await isolatedEnv(fast);
    await vero.fail(veroToken, { statuses: [500, 429], rate: 0.2, seed: 17 });
    const users = Array.from({ length: 40 }, () => unique("u"));
    for (let n = 1; n <= 6; n++) {
      const response = await postApi(env, "batch", { batch: users.map((user) => track(user, `e${n}`)) });
      expect(response.status).toBe(200);
    }
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length >= 240, { timeoutMs: 50_000 });
    expect(calls.some((call) => call.status >= 400)).toBe(true);
    const got = delivered(calls);
    expect(new Set(got).size).toBe(240);
    for (const user of users)
      expect(got.filter((line) => line.startsWith(`${user} `))).toEqual([1, 2, 3, 4, 5, 6].map((n) => `${user} e${n}`));
  });

  it("dead-letters a job whose calls fail past the horizon, then delivers the user's next event", async () => {
    // The schedule's own delays (5 s, then 10 s): the test moves the head job's clock instead of waiting.
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const user = unique("u");
    const first = unique("m");
    await vero.fail(veroToken, { status: 503 });
    await postApi(env, "batch", { batch: [track(user, "stuck", first), track(user, "next")] });
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 503));
    const mailbox = stub(env, user);
    // The head job first failed 27 hours ago: its next failure ends the 26-hour horizon.
    await runInDurableObject(mailbox, (_instance: Mailbox, state) => {
      state.storage.sql.exec(
        "UPDATE jobs SET failing_since = ?, next_at = 0 WHERE message_id = ?",
        Date.now() - 27 * 3_600_000,
        first,
      );
    });
    await vero.fail(veroToken, { status: 503, times: 1 });
    await runDurableObjectAlarm(mailbox);
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length === 1);
    expect(delivered(calls)).toEqual([`${user} next`]);
    await vi.waitFor(async () =>
      expect(await deadLetterFor(env.LEDGER as D1Database, first)).toMatchObject({
        id: expect.stringMatching(/^vero-/),
        reason: expect.stringMatching(/retries exhausted.*503/),
      }),
    );
    expect(await held(env, user)).toEqual([]);
  });

  it("skips a re-sent messageId: twice in one request, in a later request, and in a re-drive after delivery", async () => {
    const { env, veroToken } = await isolatedEnv(fast, { ledger: true });
    const user = unique("u");
    const same = track(user, "once");
    await postApi(env, "batch", { batch: [same, same] });
    await vero.waitFor(veroToken, (all) => delivered(all).length === 1);
    await postApi(env, "track", same);
    await redriveDeadLetter(
      { ...env, VERO_QUEUE: undefined },
      {
        id: unique("letter"),
        source: "vero",
        body: { v: 2, kind: "vero", messageId: same.messageId, user, requests: [], at: 1 },
        reason: "test",
        permanent: true,
        attempts: 1,
        failedAt: new Date().toISOString(),
      },
    ).catch(() => undefined);
    await postApi(env, "track", track(user, "after"));
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length >= 2);
    expect(delivered(calls)).toEqual([`${user} once`, `${user} after`]);
  });

  it("a re-driven dead letter goes back into its user's mailbox and makes only the calls Vero has not accepted", async () => {
    const { env, veroToken } = await isolatedEnv(fast, { ledger: true });
    const user = unique("u");
    await vero.fail(veroToken, { status: 400, after: 1 });
    const messageId = unique("m");
    const identifyWithTags = {
      type: "identify",
      messageId,
      userId: user,
      traits: { email: `${user}@example.com` },
      integrations: { Vero: { tags: { id: user, action: "add", values: ["vip"] } } },
    };
    await postApi(env, "identify", identifyWithTags);
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 400));
    // The mailbox moves its letter to D1 on its next wake.
    const letter = await vi.waitFor(async () => {
      const { letters } = await listDeadLetters(env.LEDGER as D1Database, { source: "vero" });
      for (const summary of letters) {
        const found = await getDeadLetter(env.LEDGER as D1Database, summary.id);
        if (found && (found.body as { messageId?: string }).messageId === messageId) return found;
      }
      throw new Error("no dead letter yet");
    });
    await vero.heal(veroToken);
    await redriveDeadLetter({ ...env, VERO_QUEUE: undefined }, letter);
    const calls = await vero.waitFor(veroToken, (all) => all.filter((call) => call.status < 300).length === 2);
    expect(calls.filter((call) => call.status < 300).map((call) => call.path.replace("/api/v2", ""))).toEqual([
      "/users/track",
      "/users/tags/edit",
    ]);
    expect(await getDeadLetter(env.LEDGER as D1Database, letter.id)).toBeUndefined();
  });

  it("sends an alias's reidentify from the previous id's mailbox, after that id's earlier events; the new id's events do not wait for it", async () => {
    const { env, veroToken } = await isolatedEnv(fast);
    const [before, after] = [unique("old"), unique("new")];
    await vero.fail(veroToken, { status: 500, times: 1 });
    await postApi(env, "batch", {
      batch: [
        track(before, "before-alias"),
        { type: "alias", messageId: unique("m"), previousId: before, userId: after },
        track(after, "as-new"),
      ],
    });
    const calls = await vero.waitFor(veroToken, (all) => all.filter((call) => call.status < 300).length === 3);
    const ok = calls.filter((call) => call.status < 300).map((call) => call.path.replace("/api/v2", ""));
    expect(ok.indexOf("/events/track")).toBeLessThan(ok.indexOf("/users/reidentify"));
    expect(await held(env, before)).toEqual([]);
    expect(await held(env, after)).toEqual([]);
  });

  it("keeps a letter D1 refuses in the mailbox, delivers the user's next event meanwhile, and stores the letter once D1 is back", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const refused = unique("m");
    // D1 refuses every statement, as during an outage; the mailbox's own storage still works.
    await withMailboxEnv(mailbox, { ...env, LEDGER: brokenD1 });
    await vero.fail(veroToken, { status: 400, times: 1 });
    await postApi(env, "batch", { batch: [track(user, "refused", refused), track(user, "next")] });
    await vero.waitFor(veroToken, (all) => delivered(all).length === 1);
    expect(await held(env, user)).toEqual([]);
    expect(await keptLetters(mailbox)).toHaveLength(1);
    expect(await deadLetterFor(env.LEDGER as D1Database, refused)).toBeUndefined();
    // The refused call is not made again while the letter waits.
    expect((await vero.calls(veroToken)).filter((call) => call.status === 400)).toHaveLength(1);
    // D1 is back: the next wake stores the letter.
    await withMailboxEnv(mailbox, env);
    await runDurableObjectAlarm(mailbox);
    expect(await deadLetterFor(env.LEDGER as D1Database, refused)).toMatchObject({ permanent: true });
    expect(await keptLetters(mailbox)).toEqual([]);
  });

  it("without the LEDGER binding, a job that fails for good waits in the mailbox as a letter (not re-sent) and the user's next event is delivered; the letter reaches D1 once bound", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const refused = unique("m");
    const { LEDGER: _ledger, ...unbound } = env;
    await withMailboxEnv(mailbox, unbound as Env);
    await vero.fail(veroToken, { status: 400, times: 1 });
    await postApi(env, "batch", { batch: [track(user, "refused", refused), track(user, "next")] });
    await vero.waitFor(veroToken, (all) => delivered(all).length === 1);
    expect(await keptLetters(mailbox)).toHaveLength(1);
    // Once its counts are reported, the letter waiting for LEDGER wakes it an hour later, not every RETRY_LATER_MS.
    const alarm = () => runInDurableObject(mailbox, (_instance: Mailbox, state) => state.storage.getAlarm());
    await vi.waitFor(async () => expect(await alarm()).toBeGreaterThan(Date.now() + RETRY_LATER_MS), {
      timeout: 3 * REPORT_MS,
    });
    expect((await vero.calls(veroToken)).filter((call) => call.status === 400)).toHaveLength(1);
    await withMailboxEnv(mailbox, env);
    await runDurableObjectAlarm(mailbox);
    expect(await deadLetterFor(env.LEDGER as D1Database, refused)).toMatchObject({ permanent: true });
    expect((await vero.calls(veroToken)).filter((call) => call.status === 400)).toHaveLength(1);
  });

  it("delivers a job handed to an empty mailbox within the hand-over, storing no job; a hand-over that arrives meanwhile is stored behind it and sent after its answer; once emptied, the next is delivered at once again", async () => {
    const { env, veroToken } = await isolatedEnv(fast);
    const user = unique("u");
    const mailbox = stub(env, user);
    const ready = mailboxConfigFor(env);
    if (!ready.ok) throw new Error(ready.reason);
    // Long enough for the second hand-over to arrive while the first call is under way, on a loaded machine too.
    await vero.fail(veroToken, { delayMs: 2_000 });
    const stored = () =>
      runInDurableObject(
        mailbox,
        (_instance: Mailbox, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM jobs").one().n,
      );
    const hand = (event: string) => mailbox.accept([{ job: trackJob(user, event) }], ready.config, ready.credential);
    const first = hand("first");
    await vi.waitFor(async () => expect((await vero.inFlight(veroToken)).now).toBe(1));
    expect(await stored()).toBe(0);
    expect(await hand("second")).toMatchObject({ accepted: 1, delivered: 0 });
    expect(await stored()).toBe(1);
    expect(await first).toMatchObject({ accepted: 1, delivered: 1, veroCalls: 1 });
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length === 2);
    expect(delivered(calls)).toEqual([`${user} first`, `${user} second`]);
    expect((await vero.inFlight(veroToken)).max).toBe(1);
    await vi.waitFor(async () => expect(await stored()).toBe(0), { timeout: 10_000 });
    // Emptied by its alarm, the mailbox delivers the next hand-over at once again.
    expect(await hand("third")).toMatchObject({ accepted: 1, delivered: 1 });
    expect(await stored()).toBe(0);
  });

  it("a new mailbox's first delivered event leaves its settings, its ledger row and its report's alarm stored, one alarm set; the next event sets none", async () => {
    const { env } = await isolatedEnv(fast);
    const user = unique("u");
    const mailbox = stub(env, user);
    const ready = mailboxConfigFor(env);
    if (!ready.ok) throw new Error(ready.reason);
    const hand = (event: string) => mailbox.accept([{ job: trackJob(user, event) }], ready.config, ready.credential);
    const stored = () =>
      runInDurableObject(mailbox, async (_instance: Mailbox, state) => {
        const { sql } = state.storage;
        return {
          settings: sql.exec<{ n: number }>("SELECT count(*) AS n FROM state WHERE key = 'config'").one().n,
          jobs: sql.exec<{ n: number }>("SELECT count(*) AS n FROM jobs").one().n,
          done: sql.exec<{ done_at: number }>("SELECT done_at FROM calls ORDER BY done_at").toArray(),
          alarm: await state.storage.getAlarm(),
        };
      });
    expect(await hand("first")).toMatchObject({ accepted: 1, delivered: 1, alarmsSet: 1 });
    const first = await stored();
    expect(first).toMatchObject({ settings: 1, jobs: 0 });
    expect(first.done).toHaveLength(1);
    expect(first.alarm).toBe((first.done[0]?.done_at ?? 0) + REPORT_MS);
    expect(await hand("second")).toMatchObject({ accepted: 1, delivered: 1, alarmsSet: 0 });
    const second = await stored();
    expect(second.done).toHaveLength(2);
    expect(second.alarm).toBe(first.alarm);
  });

  it("gives a mailbox of the previous version the ledger's count columns: its recorded calls stay skipped, and none is counted as a delivery of this mailbox's", async () => {
    const { env, veroToken } = await isolatedEnv(fast);
    const user = unique("u");
    const mailbox = stub(env, user);
    const old = unique("m");
    const columns = await runInDurableObject(mailbox, (instance: Mailbox, state) => {
      const { sql } = state.storage;
      sql.exec("DROP TABLE calls");
      sql.exec(
        `CREATE TABLE calls (message_id TEXT NOT NULL, call TEXT NOT NULL, status INTEGER NOT NULL, done_at INTEGER NOT NULL,
           PRIMARY KEY (message_id, call)) WITHOUT ROWID`,
      );
      sql.exec("INSERT INTO calls VALUES (?, '0 POST /events/track', 200, ?)", old, Date.now());
      // The object starting again on that storage, as after a deploy.
      new (instance.constructor as new (ctx: DurableObjectState, env: Env) => Mailbox)(state, env);
      return sql.exec("SELECT * FROM calls LIMIT 0").columnNames;
    });
    expect(columns).toEqual(["message_id", "call", "status", "done_at", "name", "latency_ms"]);
    await postApi(env, "batch", { batch: [track(user, "again", old), track(user, "new")] });
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length === 1);
    expect(delivered(calls)).toEqual([`${user} new`]);
    const counted = await runInDurableObject(mailbox, (_instance: Mailbox, state) =>
      state.storage.sql.exec<{ message_id: string }>("SELECT message_id FROM calls WHERE name IS NOT NULL").toArray(),
    );
    expect(counted.map((row) => row.message_id)).not.toContain(old);
    expect(counted).toHaveLength(1);
  });

  it("keeps one dead letter per failed event: three permanent failures of one user, the mailbox emptied between them, are three letters", async () => {
    const { env, veroToken } = await isolatedEnv(fast, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const ids = [unique("m"), unique("m"), unique("m")];
    for (const [index, messageId] of ids.entries()) {
      await vero.fail(veroToken, { status: 400, times: 1 });
      await postApi(env, "track", track(user, `refused-${index}`, messageId));
      await vero.waitFor(veroToken, (all) => all.filter((call) => call.status === 400).length === index + 1);
      // Emptied: nothing held, nothing recorded, so the object wiped its storage (its settings row included).
      await vi.waitFor(async () =>
        expect(
          await runInDurableObject(
            mailbox,
            (_instance: Mailbox, state) =>
              state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM state").one().n,
          ),
        ).toBe(0),
      );
      await vi.waitFor(async () => expect(await keptLetters(mailbox)).toEqual([]));
    }
    const letters = await Promise.all(ids.map((id) => deadLetterFor(env.LEDGER as D1Database, id)));
    expect(letters.map((letter) => (letter?.body as { messageId?: string } | undefined)?.messageId)).toEqual(ids);
    expect(new Set(letters.map((letter) => letter?.id)).size).toBe(3);
  });

  it("a letter holds only the calls Vero has not accepted: re-driven after its mailbox forgot the first call, it repeats nothing", async () => {
    const { env, veroToken } = await isolatedEnv(fast, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const messageId = unique("m");
    await vero.fail(veroToken, { status: 400, after: 1, times: 1 });
    await postApi(env, "identify", {
      type: "identify",
      messageId,
      userId: user,
      traits: { email: `${user}@example.com` },
      integrations: { Vero: { tags: { id: user, action: "add", values: ["vip"] } } },
    });
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 400));
    const letter = await letterOf(env, messageId);
    expect(letter.body).toMatchObject({ step: 1, requests: [{ path: "/users/tags/edit" }] });
    // The mailbox forgets the call Vero accepted, as after the ledger's retention.
    await runInDurableObject(mailbox, (_instance: Mailbox, state) => state.storage.sql.exec("DELETE FROM calls"));
    await redriveDeadLetter({ ...env, VERO_QUEUE: undefined }, letter);
    const calls = await vero.waitFor(veroToken, (all) => all.filter((call) => call.status < 300).length === 2);
    expect(calls.filter((call) => call.status < 300).map((call) => call.path.replace("/api/v2", ""))).toEqual([
      "/users/track",
      "/users/tags/edit",
    ]);
  });

  it("a call Vero accepted that the mailbox could not record is an attempt: counted, backed off, listed as stalled, and ended by the horizon as a letter that says so", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "60" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const messageId = unique("m");
    // The write that records an accepted call fails, as at the storage limit or on a storage fault.
    await runInDurableObject(mailbox, (instance: Mailbox) => {
      (instance as unknown as { recordDelivered: () => void }).recordDelivered = () => {
        throw new Error("SQLITE_FULL: database or disk is full");
      };
    });
    await postApi(env, "track", track(user, "unrecorded", messageId));
    await vero.waitFor(veroToken, (all) => delivered(all).length === 1);
    const job = () =>
      runInDurableObject(
        mailbox,
        (_instance: Mailbox, state) =>
          state.storage.sql
            .exec<{ attempts: number; next_at: number }>("SELECT attempts, next_at FROM jobs")
            .toArray()[0],
      );
    await vi.waitFor(async () => expect(await job()).toMatchObject({ attempts: 1 }));
    // The schedule's first delay, 60 s less at most 20 % jitter.
    expect((await job())?.next_at).toBeGreaterThan(Date.now() + 40_000);
    await vi.waitFor(async () =>
      expect(await stalledRow(env, mailbox)).toMatchObject({ reason: expect.stringMatching(/could not record/) }),
    );
    // A wake before the job is due makes no call.
    await runDurableObjectAlarm(mailbox);
    expect(delivered(await vero.calls(veroToken))).toHaveLength(1);
    // The job first failed 27 hours ago: the next attempt (the schedule allows it) ends the horizon.
    await runInDurableObject(mailbox, (_instance: Mailbox, state) =>
      state.storage.sql.exec("UPDATE jobs SET failing_since = ?, next_at = 0", Date.now() - 27 * 3_600_000),
    );
    await runDurableObjectAlarm(mailbox);
    expect(delivered(await vero.calls(veroToken))).toHaveLength(2);
    const letter = await letterOf(env, messageId);
    expect(letter).toMatchObject({ permanent: false, attempts: 2 });
    expect(letter.reason).toMatch(/retries exhausted.*could not record/);
    expect(await held(env, user)).toEqual([]);
  });

  it("a stalled mailbox wakes when its head is due (an hour away), not sooner", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "3600" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    await vero.fail(veroToken, { status: 503, times: 1 });
    await postApi(env, "track", track(user, "later"));
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 503));
    await vi.waitFor(async () => expect(await stalledRow(env, mailbox)).not.toBeNull());
    const wake = () => alarmAndDue(mailbox);
    await vi.waitFor(async () => expect((await wake()).alarm).toBe((await wake()).due));
    expect((await wake()).due).toBeGreaterThan(Date.now() + 40 * 60_000);
  });

  it("when D1 refuses the stalled row at the first failure, the mailbox writes it on a later wake, waking for it at most every RETRY_LATER_MS", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "3600" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    await withMailboxEnv(mailbox, { ...env, LEDGER: brokenD1 });
    await vero.fail(veroToken, { status: 503, times: 1 });
    await postApi(env, "track", track(user, "later"));
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 503));
    const alarm = () => runInDurableObject(mailbox, (_instance: Mailbox, state) => state.storage.getAlarm());
    await vi.waitFor(async () => expect(await alarm()).toBeLessThan(Date.now() + RETRY_LATER_MS + 1_000));
    expect(await alarm()).toBeGreaterThan(Date.now() + RETRY_LATER_MS - 60_000);
    expect(await stalledRow(env, mailbox)).toBeNull();
    // Still down at that wake: the next is as far again.
    await runDurableObjectAlarm(mailbox);
    expect(await alarm()).toBeGreaterThan(Date.now() + RETRY_LATER_MS - 60_000);
    await withMailboxEnv(mailbox, env);
    await runDurableObjectAlarm(mailbox);
    expect(await stalledRow(env, mailbox)).toMatchObject({ reason: expect.stringMatching(/503/) });
    expect(await alarm()).toBeGreaterThan(Date.now() + 40 * 60_000);
  });

  it("without migration 0002 (no stalled_mailboxes table) a failing mailbox still delivers, and then wakes only for its ledger's prune", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "60" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const real = env.LEDGER as D1Database;
    const noTable = {
      prepare: (query: string) =>
        query.includes("stalled_mailboxes")
          ? {
              bind: () => ({
                run: () => Promise.reject(new Error("D1_ERROR: no such table: stalled_mailboxes: SQLITE_ERROR")),
              }),
            }
          : real.prepare(query),
      batch: (statements: D1PreparedStatement[]) => real.batch(statements),
    };
    await withMailboxEnv(mailbox, { ...env, LEDGER: noTable as unknown as D1Database });
    await vero.fail(veroToken, { status: 503, times: 1 });
    await postApi(env, "track", track(user, "late"));
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 503));
    // The retry's count is reported COUNTS_REPORT_SECONDS after the failure, by an alarm of its own: on a loaded
    // machine that alarm may be running here, when there is none to run, so the retry is made due until it is sent.
    await vi.waitFor(
      async () => {
        await makeDue(mailbox);
        await runDurableObjectAlarm(mailbox);
        expect(delivered(await vero.calls(veroToken))).toEqual([`${user} late`]);
      },
      { timeout: 10_000, interval: 500 },
    );
    // Once its counts are reported (within COUNTS_REPORT_SECONDS), nothing is left to retry: the next wake is the ledger's prune.
    const alarm = () => runInDurableObject(mailbox, (_instance: Mailbox, state) => state.storage.getAlarm());
    await vi.waitFor(async () => expect(await alarm()).toBeGreaterThan(Date.now() + 3_600_000), {
      timeout: 3 * REPORT_MS,
    });
  });

  it("lists itself in stalled_mailboxes when its head job first fails, and leaves once it is delivered", async () => {
    // A minute before the retry: the test moves the job's clock instead of waiting.
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "60" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const row = () =>
      (env.LEDGER as D1Database)
        .prepare("SELECT mailbox, reason FROM stalled_mailboxes WHERE mailbox = ?1")
        .bind(mailbox.id.toString())
        .first<{ mailbox: string; reason: string }>();
    await vero.fail(veroToken, { status: 503, times: 1 });
    await postApi(env, "track", track(user, "late"));
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 503));
    await vi.waitFor(async () => expect(await row()).toMatchObject({ reason: expect.stringMatching(/503/) }));
    expect((await row())?.reason).not.toContain(user);
    await makeDue(mailbox);
    await runDurableObjectAlarm(mailbox);
    expect(delivered(await vero.calls(veroToken))).toEqual([`${user} late`]);
    expect(await row()).toBeNull();
  });

  it("a failure the next try resolves (a blip) wakes the mailbox only for that try and writes nothing to D1's stalled_mailboxes", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "5" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const real = env.LEDGER as D1Database;
    const stalledStatements: string[] = [];
    const watched = {
      prepare: (query: string) => {
        if (query.includes("stalled_mailboxes")) stalledStatements.push(query);
        return real.prepare(query);
      },
      batch: (statements: D1PreparedStatement[]) => real.batch(statements),
    };
    await withMailboxEnv(mailbox, { ...env, LEDGER: watched as unknown as D1Database });
    await vero.fail(veroToken, { status: 503, times: 1 });
    await postApi(env, "track", track(user, "blip"));
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 503));
    const wake = () => alarmAndDue(mailbox);
    // The retry is the next wake: no wake at once to write a row for a failure a few seconds old.
    const { alarm, due } = await wake();
    expect(due).toBeGreaterThan(Date.now());
    expect(alarm).toBe(due);
    await makeDue(mailbox);
    await runDurableObjectAlarm(mailbox);
    expect(delivered(await vero.calls(veroToken))).toEqual([`${user} blip`]);
    expect(stalledStatements).toEqual([]);
    expect(await stalledRow(env, mailbox)).toBeNull();
  });

  it("a head still failing once its tries span more than STALLED_AFTER_MS is listed in stalled_mailboxes", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "5" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    await vero.fail(veroToken, { status: 503, times: 3 });
    await postApi(env, "track", track(user, "outage"));
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 503));
    const due = () =>
      runInDurableObject(mailbox, (_instance: Mailbox, state) =>
        state.storage.sql.exec<{ attempts: number }>("SELECT attempts FROM jobs").one(),
      );
    // The second try, made now, fails at once: its next try (5-10 s later, 10-20 s after the first failure) is still within the blip.
    await makeDue(mailbox);
    await runDurableObjectAlarm(mailbox);
    expect(await due()).toMatchObject({ attempts: 2 });
    expect(await stalledRow(env, mailbox)).toBeNull();
    // The first failure was a minute ago: the third try's failure lists the user.
    await runInDurableObject(mailbox, (_instance: Mailbox, state) =>
      state.storage.sql.exec("UPDATE jobs SET next_at = 0, failing_since = ?", Date.now() - 60_000),
    );
    await runDurableObjectAlarm(mailbox);
    expect(await due()).toMatchObject({ attempts: 3 });
    expect(await stalledRow(env, mailbox)).toMatchObject({ reason: expect.stringMatching(/503/) });
    await makeDue(mailbox);
    await runDurableObjectAlarm(mailbox);
    expect(delivered(await vero.calls(veroToken))).toEqual([`${user} outage`]);
    expect(await stalledRow(env, mailbox)).toBeNull();
  });

  it("counts a deletion as two subrequests in a run's budget (a lost answer is asked again): 25 deletions take two runs, the first making 20 calls", async () => {
    const { env } = await isolatedEnv({ LOG_SAMPLE_RATE: "1" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const ready = mailboxConfigFor(env);
    if (!ready.ok) throw new Error(ready.reason);
    const deletion = () => veroJob(user, [{ method: "POST", path: "/users/delete", body: { id: user } }]);
    await mailbox.accept(
      Array.from({ length: 25 }, () => ({ job: deletion() })),
      ready.config,
      ready.credential,
      3_600_000,
    );
    await makeDue(mailbox);
    const lines: string[] = [];
    const capture = (line: unknown) => void lines.push(String(line));
    const spies = (["log", "warn", "error"] as const).map((method) =>
      vi.spyOn(console, method).mockImplementation(capture),
    );
    try {
      await runInDurableObject(mailbox, (instance: Mailbox) => instance.alarm());
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    const drain = lines
      .map((line) => JSON.parse(line) as { msg: string; veroCalls?: number })
      .find((line) => line.msg === "mailbox drain");
    expect(drain?.veroCalls).toBe(20);
  });

  it("costs a user with nothing held at most 3 mailbox storage rows written per delivered event, its report included (the runtime's row counters): a delivery writes its ledger row and nothing else", async () => {
    // Every success line written: the rows are read from them.
    const { env, veroToken } = await isolatedEnv({ ...fast, LOG_SAMPLE_RATE: "1" });
    const user = unique("u");
    const lines: string[] = [];
    const capture = (line: unknown) => void lines.push(String(line));
    const spies = (["log", "warn"] as const).map((method) => vi.spyOn(console, method).mockImplementation(capture));
    try {
      for (let n = 1; n <= 5; n++) await postApi(env, "track", track(user, `e${n}`));
      await vero.waitFor(veroToken, (all) => delivered(all).length === 5);
      // The deliveries wait for their report (COUNTS_REPORT_SECONDS): it is part of the cost.
      await vi.waitFor(
        async () =>
          expect(
            await runInDurableObject(
              stub(env, user),
              (_instance: Mailbox, state) =>
                state.storage.sql
                  .exec<{ n: number }>(
                    `SELECT count(*) AS n FROM calls WHERE name IS NOT NULL AND done_at >
                       coalesce((SELECT json_extract(value, '$.upTo') FROM state WHERE key = 'reported'), 0)`,
                  )
                  .one().n,
            ),
          ).toBe(0),
        { timeout: 3 * REPORT_MS },
      );
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    // Another test's mailbox may still log its drain meanwhile: only this user's lines count.
    const mine = stub(env, user).id.toString();
    const rows = lines
      .map((line) => JSON.parse(line) as { doRowsWritten?: number; doRowsRead?: number; msg: string; mailbox?: string })
      .filter((line) => line.doRowsWritten !== undefined && (line.mailbox === undefined || line.mailbox === mine));
    expect(rows.filter((line) => line.msg === "outbound handed to mailboxes")).toHaveLength(5);
    const written = rows.reduce((sum, line) => sum + (line.doRowsWritten ?? 0), 0);
    const read = rows.reduce((sum, line) => sum + (line.doRowsRead ?? 0), 0);
    console.info(`mailbox rows per event: ${written / 5} written, ${read / 5} read over ${rows.length} lines`);
    // 5 ledger rows, the stored settings once, 3 rows per report: a machine slow enough to need two reports is the worst case.
    expect(written / 5, JSON.stringify(rows)).toBeLessThanOrEqual(3);
  });

  it("writes 3 storage rows for a job that waits in the mailbox (the queue's settle window): the job stored, deleted once delivered, and its ledger row (the runtime's row counters)", async () => {
    // No report within the test (COUNTS_REPORT_SECONDS): its rows are the counts', not the job's.
    const { env, veroToken } = await isolatedEnv({ ...fast, LOG_SAMPLE_RATE: "1", COUNTS_REPORT_SECONDS: "3600" });
    const user = unique("u");
    const mailbox = stub(env, user);
    const ready = mailboxConfigFor(env);
    if (!ready.ok) throw new Error(ready.reason);
    const lines: string[] = [];
    const capture = (line: unknown) => void lines.push(String(line));
    // Once before counting: the first hand-over stores the mailbox's settings.
    // A settle window the alarm never reaches by itself: the test makes the job due and runs the alarm.
    await mailbox.accept([{ job: trackJob(user, "e0") }], ready.config, ready.credential, 60_000);
    await makeDue(mailbox);
    await runDurableObjectAlarm(mailbox);
    let accepted = 0;
    const spies = (["log", "warn"] as const).map((method) => vi.spyOn(console, method).mockImplementation(capture));
    try {
      for (let n = 1; n <= 5; n++) {
        const answer = await mailbox.accept([{ job: trackJob(user, `e${n}`) }], ready.config, ready.credential, 60_000);
        accepted += answer.doRowsWritten;
        await makeDue(mailbox);
        await runDurableObjectAlarm(mailbox);
      }
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    expect(delivered(await vero.calls(veroToken))).toEqual([0, 1, 2, 3, 4, 5].map((n) => `${user} e${n}`));
    const mine = mailbox.id.toString();
    const drains = lines
      .map((line) => JSON.parse(line) as { doRowsWritten?: number; msg: string; mailbox?: string })
      .filter((line) => line.msg === "mailbox drain" && line.mailbox === mine);
    expect(drains).toHaveLength(5);
    const drained = drains.reduce((sum, line) => sum + (line.doRowsWritten ?? 0), 0);
    expect((accepted + drained) / 5, JSON.stringify({ accepted, drains })).toBeLessThanOrEqual(3);
  });

  it("reads its ledger once per instance, not at each hand-over, to know when its counts are due: with 5,000 calls recorded, a hand-over reads under 100 rows (the runtime's row counters)", async () => {
    const { env, veroToken } = await isolatedEnv({ ...fast, LOG_SAMPLE_RATE: "1" });
    const user = unique("u");
    const mailbox = stub(env, user);
    await postApi(env, "track", track(user, "e0"));
    // A week of another mailbox's calls, taken over (and so never counted here).
    await runInDurableObject(mailbox, (_instance: Mailbox, state) =>
      state.storage.sql.exec(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO calls (message_id, call, status, done_at) SELECT 'old-' || i, '0 POST /events/track', 200, ? FROM n`,
        Date.now() - 86_400_000,
      ),
    );
    const lines: string[] = [];
    const capture = (line: unknown) => void lines.push(String(line));
    const spies = (["log", "warn"] as const).map((method) => vi.spyOn(console, method).mockImplementation(capture));
    try {
      for (let n = 1; n <= 3; n++) await postApi(env, "track", track(user, `e${n}`));
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    expect(delivered(await vero.calls(veroToken))).toEqual([0, 1, 2, 3].map((n) => `${user} e${n}`));
    const reads = lines
      .map((line) => JSON.parse(line) as { msg: string; doRowsRead?: number })
      .filter((line) => line.msg === "outbound handed to mailboxes")
      .map((line) => line.doRowsRead ?? 0);
    expect(reads).toHaveLength(3);
    expect(Math.max(...reads), JSON.stringify(reads)).toBeLessThan(100);
  });

  it("keeps its ledger for the retention and prunes what is older, at most once a day", async () => {
    const { env } = await isolatedEnv({ ...fast, LEDGER_RETENTION_DAYS: "7" });
    const user = unique("u");
    const mailbox = stub(env, user);
    const day = 86_400_000;
    await runInDurableObject(mailbox, (_instance: Mailbox, state) => {
      const now = Date.now();
      for (const [id, age] of [
        ["old", 8 * day],
        ["young", 6 * day],
        ["fresh", 0],
      ] as const)
        state.storage.sql.exec(
          "INSERT INTO calls (message_id, call, status, done_at) VALUES (?, '0 POST /events/track', 200, ?)",
          id,
          now - age,
        );
      state.storage.sql.exec(
        "INSERT INTO state (key, value) VALUES ('config', ?)",
        JSON.stringify((mailboxConfigFor(env) as { config: unknown }).config),
      );
    });
    const ids = () =>
      runInDurableObject(mailbox, (_instance: Mailbox, state) =>
        state.storage.sql
          .exec<{ message_id: string }>("SELECT message_id FROM calls ORDER BY message_id")
          .toArray()
          .map((row) => row.message_id),
      );
    await runInDurableObject(mailbox, (instance: Mailbox) => instance.alarm());
    expect(await ids()).toEqual(["fresh", "young"]);
    // Pruned today already: a call past the retention recorded meanwhile waits for tomorrow's prune.
    await runInDurableObject(mailbox, (instance: Mailbox, state) => {
      state.storage.sql.exec(
        "INSERT INTO calls (message_id, call, status, done_at) VALUES ('old-too', '0 POST /events/track', 200, ?)",
        Date.now() - 8 * day,
      );
      return instance.alarm();
    });
    expect(await ids()).toEqual(["fresh", "old-too", "young"]);
  });

  it("counts a delivery by its ledger row alone: the counts wait COUNTS_REPORT_SECONDS after the first delivery, then one report carries each delivery and its latency once, and the first delivery after it arms the next report", async () => {
    const { env, veroToken } = await isolatedEnv(fast);
    const user = unique("u");
    const mailbox = stub(env, user);
    // The shards unreachable: the report waits in the mailbox's outbox, where the test reads it.
    const { COUNTERS: _shards, ...noShards } = env;
    await withMailboxEnv(mailbox, noShards as Env);
    const storage = () =>
      runInDurableObject(mailbox, async (_instance: Mailbox, state) => {
        const { sql } = state.storage;
        const outbox = sql.exec<{ value: string }>("SELECT value FROM state WHERE key = 'outbox'").toArray()[0];
        return {
          countRows: sql.exec<{ n: number }>("SELECT count(*) AS n FROM counts").one().n,
          firstDone: sql.exec<{ t: number }>("SELECT min(done_at) AS t FROM calls").one().t,
          lastDone: sql.exec<{ t: number }>("SELECT max(done_at) AS t FROM calls").one().t,
          outbox: outbox ? (JSON.parse(outbox.value) as CountReport) : undefined,
          alarm: await state.storage.getAlarm(),
        };
      });
    await postApi(env, "track", track(user, "first"));
    await postApi(env, "track", track(user, "second"));
    await vero.waitFor(veroToken, (all) => delivered(all).length === 2);
    const waiting = await storage();
    expect(waiting).toMatchObject({ countRows: 0, outbox: undefined });
    expect(waiting.alarm).toBe(waiting.firstDone + REPORT_MS);

    await vi.waitFor(async () => expect((await storage()).outbox).toBeDefined(), { timeout: 3 * REPORT_MS });
    const rows = (await storage()).outbox?.rows ?? [];
    const sum = (outcome: string) => rows.filter((row) => row[3] === outcome).reduce((n, row) => n + row[4], 0);
    expect(new Set(rows.filter((row) => row[3] === "delivered").map((row) => row[2]))).toEqual(
      new Set(["POST /events/track"]),
    );
    expect(sum("delivered")).toBe(2);
    expect(sum("latency")).toBe(2);

    await withMailboxEnv(mailbox, env);
    await runDurableObjectAlarm(mailbox);
    const after = await storage();
    expect(after.outbox).toBeUndefined();
    // Nothing waits to be reported again: the next wake is the ledger's prune.
    expect(after.alarm).toBeGreaterThan(Date.now() + 3_600_000);

    // A hand-over that finds the report armed leaves the alarm alone; this one finds none waiting, so it arms it.
    await postApi(env, "track", track(user, "third"));
    await vero.waitFor(veroToken, (all) => delivered(all).length === 3);
    const next = await storage();
    expect(next.alarm).toBe(next.lastDone + REPORT_MS);
  });
});

describe("a hot user: visible and bounded", { timeout: 60_000 }, () => {
  const ready = (env: Env) => {
    const found = mailboxConfigFor(env);
    if (!found.ok) throw new Error(found.reason);
    return found;
  };

  it("lists a user whose oldest held job has waited longer than ALERT_STALLED_MINUTES with nothing failing, and clears it once the backlog drains", async () => {
    const { env, veroToken } = await isolatedEnv(fast, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const { config, credential } = ready(env);
    // Two jobs held behind a long wait, the oldest received two hours ago, nothing tried: a healthy backlog.
    await mailbox.accept(
      [{ job: trackJob(user, "old") }, { job: trackJob(user, "young") }],
      config,
      credential,
      3_600_000,
    );
    await runInDurableObject(mailbox, (_instance: Mailbox, state) =>
      state.storage.sql.exec(
        "UPDATE jobs SET received_at = ? WHERE rseq = 0 AND seq = (SELECT min(seq) FROM jobs)",
        Date.now() - 2 * 3_600_000,
      ),
    );
    await runDurableObjectAlarm(mailbox);
    expect(await stalledRow(env, mailbox)).toMatchObject({ reason: "backlog: 2 jobs waiting, none failed" });
    await makeDue(mailbox);
    await runDurableObjectAlarm(mailbox);
    expect(delivered(await vero.calls(veroToken))).toEqual([`${user} old`, `${user} young`]);
    expect(await stalledRow(env, mailbox)).toBeNull();
  });

  it("counts the horizon from the first failed attempt: a job that waited 27 hours in a healthy backlog is retried on its first 429, not dead-lettered", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "60" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const { config, credential } = ready(env);
    const messageId = unique("m");
    await mailbox.accept([{ job: trackJob(user, "patient", messageId) }], config, credential, 3_600_000);
    await runInDurableObject(mailbox, (_instance: Mailbox, state) =>
      state.storage.sql.exec("UPDATE jobs SET received_at = ?, next_at = 0", Date.now() - 27 * 3_600_000),
    );
    await vero.fail(veroToken, { status: 429, times: 1 });
    await runDurableObjectAlarm(mailbox);
    expect((await vero.calls(veroToken)).map((call) => call.status)).toEqual([429]);
    expect(await held(env, user)).toEqual([messageId]);
    expect(await deadLetterFor(env.LEDGER as D1Database, messageId)).toBeUndefined();
  });

  it("VERO_TRACK_CONCURRENCY=4 sends a user's tracks side by side, while a call that changes the user goes after the tracks before it and before those after it", async () => {
    const { env, veroToken } = await isolatedEnv({ ...fast, VERO_TRACK_CONCURRENCY: "4" });
    const user = unique("u");
    await vero.fail(veroToken, { delayMs: 150 });
    const identify = { type: "identify", messageId: unique("m"), userId: user, traits: { plan: "pro" } };
    await postApi(env, "batch", {
      batch: [track(user, "t1"), track(user, "t2"), track(user, "t3"), identify, track(user, "t4"), track(user, "t5")],
    });
    const calls = await vero.waitFor(veroToken, (all) => all.filter((call) => call.status === 200).length === 6);
    const order = calls.map((call) =>
      call.path.endsWith("/events/track") ? (call.body as { event_name: string }).event_name : "identify",
    );
    expect(new Set(order.slice(0, 3))).toEqual(new Set(["t1", "t2", "t3"]));
    expect(order[3]).toBe("identify");
    expect(new Set(order.slice(4))).toEqual(new Set(["t4", "t5"]));
    expect((await vero.inFlight(veroToken)).max).toBe(3);
  });

  it("by default (VERO_TRACK_CONCURRENCY=1) a user's calls go one at a time, in order", async () => {
    const { env, veroToken } = await isolatedEnv(fast);
    const user = unique("u");
    await vero.fail(veroToken, { delayMs: 50 });
    await postApi(env, "batch", { batch: [1, 2, 3, 4].map((n) => track(user, `t${n}`)) });
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length === 4);
    expect(delivered(calls)).toEqual([1, 2, 3, 4].map((n) => `${user} t${n}`));
    expect((await vero.inFlight(veroToken)).max).toBe(1);
  });

  it("refuses jobs beyond MAILBOX_MAX_JOBS, so the queue retries them, and reports itself stalled at once", async () => {
    const { env } = await isolatedEnv({}, { queued: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const { config, credential } = ready(env);
    // The mailbox fills up to its cap behind a head that is not due (the settle window of an hour).
    const fillers = Array.from({ length: MAILBOX_MAX_JOBS }, (_, i) => ({ job: trackJob(user, `filler-${i}`) }));
    await mailbox.accept(fillers, config, credential, 3_600_000);
    const fate = await runBatch(QUEUE_NAMES.vero, [{ id: "over", body: trackJob(user, "over") }], env, {
      deliver: false,
    });
    expect(fate.acked).toEqual([]);
    expect(Object.keys(fate.retried)).toEqual(["over"]);
    await vi.waitFor(async () =>
      expect(await stalledRow(env, mailbox)).toMatchObject({ reason: expect.stringMatching(/^capped at 10000 jobs/) }),
    );
    // Dated back past ALERT_STALLED_MINUTES (60 by default): the alert and readiness count it now.
    const oldest = await (env.LEDGER as D1Database)
      .prepare("SELECT oldest_at FROM stalled_mailboxes WHERE mailbox = ?1")
      .bind(mailbox.id.toString())
      .first<{ oldest_at: string }>();
    expect(Date.parse(oldest?.oldest_at ?? "")).toBeLessThan(Date.now() - 60 * 60_000);
  });
});

/**
 * The dead letter of `messageId`, once the mailbox's own alarm has stored it in D1: the runtime fires that
 * alarm, which on a loaded machine may take longer than vi.waitFor's default second.
 */
const letterOf = (env: Env, messageId: string) =>
  vi.waitFor(
    async () => {
      const found = await deadLetterFor(env.LEDGER as D1Database, messageId);
      if (!found) throw new Error(`no dead letter for ${messageId} yet`);
      return found;
    },
    { timeout: 10_000, interval: 100 },
  );

/** Every row the mailbox stores, as text (the runtime's own tables aside). */
const storedText = (mailbox: DurableObjectStub<Mailbox>) =>
  runInDurableObject(mailbox, (_instance: Mailbox, state) =>
    state.storage.sql
      .exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
      )
      .toArray()
      .map(({ name }) => `${name}: ${JSON.stringify(state.storage.sql.exec(`SELECT * FROM "${name}"`).toArray())}`)
      .join("\n"),
  );

describe("the mailbox's identity: the Vero account and the user, never the credential", { timeout: 60_000 }, () => {
  it("never stores the Vero credential: no row holds it while a job is held, retried, delivered or dead-lettered", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "60" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    const [held1, refused] = [unique("m"), unique("m")];
    await vero.fail(veroToken, { status: 503, times: 1 });
    await postApi(env, "track", track(user, "held", held1));
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 503));
    const whileHeld = await storedText(mailbox);
    expect(whileHeld).toContain(held1);
    expect(whileHeld).not.toContain(veroToken);
    await makeDue(mailbox);
    await runDurableObjectAlarm(mailbox);
    await vero.fail(veroToken, { status: 400, times: 1 });
    await postApi(env, "batch", { batch: [track(user, "refused", refused), track(user, "after")] });
    await vero.waitFor(veroToken, (all) => delivered(all).length === 2);
    const letter = await letterOf(env, refused);
    expect(JSON.stringify(letter)).not.toContain(veroToken);
    const afterwards = await storedText(mailbox);
    expect(afterwards).toContain(held1);
    expect(afterwards).not.toContain(veroToken);
  });

  it("keeps order and de-duplication across a credential rotation: a backlog held while Vero fails, the credential rotated, more events (one re-sent), Vero recovers: every event once, in order", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "60" }, { ledger: true });
    const user = unique("u");
    const mailbox = stub(env, user);
    await vero.fail(veroToken, { status: 503 });
    const resent = track(user, "e2");
    await postApi(env, "batch", { batch: [track(user, "e1"), resent] });
    await vero.waitFor(veroToken, (all) => all.some((call) => call.status === 503));
    // The operator rotates VERO_AUTH_TOKEN: the Worker's settings now carry the new key.
    const rotatedToken = await vero.tenant();
    const rotated = { ...env, VERO_AUTH_TOKEN: rotatedToken };
    await postApi(rotated, "batch", { batch: [resent, track(user, "e3")] });
    await vero.heal(veroToken);
    await makeDue(mailbox);
    await runDurableObjectAlarm(mailbox);
    const calls = await vero.waitFor(rotatedToken, (all) => delivered(all).length >= 3);
    expect(delivered(calls)).toEqual([`${user} e1`, `${user} e2`, `${user} e3`]);
    expect(delivered(await vero.calls(veroToken))).toEqual([]);
  });

  it("upgrade: jobs stored in the earlier layout (a rowid table with an order index, AUTOINCREMENT, no job ids) are delivered in order from the new one, and a job without a messageId does not repeat the call its ledger recorded under its old name", async () => {
    const { env, veroToken } = await isolatedEnv(fast);
    const user = unique("u");
    const mailbox = stub(env, user);
    const ready = mailboxConfigFor(env);
    if (!ready.ok) throw new Error(ready.reason);
    await mailbox.accept([], ready.config, ready.credential);
    const [named] = trackJob(user, "a").requests;
    const first = trackJob(user, "b1").requests[0];
    const second = trackJob(user, "b2").requests[0];
    if (!named || !first || !second) throw new Error("no request");
    const nameless = veroJob(user, [first, second], "#0");
    const layout = await runInDurableObject(mailbox, async (_instance: Mailbox, state) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE jobs");
      sql.exec(`CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL,
        rseq INTEGER NOT NULL, received_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL DEFAULT 0, failing_since INTEGER, last_error TEXT)`);
      sql.exec("CREATE INDEX jobs_order ON jobs (at, rseq, seq)");
      const insert = (job: VeroJob, at: number) =>
        sql
          .exec<{ seq: number }>(
            "INSERT INTO jobs (message_id, body, at, rseq, received_at) VALUES (?, ?, ?, 0, ?) RETURNING seq",
            job.messageId,
            JSON.stringify(job),
            at,
            Date.now(),
          )
          .one().seq;
      insert(veroJob(user, [named]), 2_000);
      // Older, arrived later; its first call was made and recorded under the name of its row.
      const seq = insert(nameless, 1_000);
      sql.exec(
        "INSERT INTO calls (message_id, call, status, done_at) VALUES (?, '0 POST /events/track', 200, ?)",
        `#0@${seq}`,
        Date.now(),
      );
      upgrade(state.storage);
      let rowid = true;
      try {
        sql.exec("SELECT rowid FROM jobs LIMIT 0");
      } catch {
        rowid = false;
      }
      const ids = sql.exec<{ job_id: string }>("SELECT job_id FROM jobs ORDER BY at, rseq, seq").toArray();
      // Not before the test runs it.
      await state.storage.setAlarm(Date.now() + 60_000);
      return { rowid, ids: ids.map((row) => row.job_id) };
    });
    expect(layout.rowid).toBe(false);
    expect(layout.ids).toHaveLength(2);
    expect(layout.ids.every((id) => /^[0-9a-f]{32}$/.test(id))).toBe(true);
    await runDurableObjectAlarm(mailbox);
    expect(delivered(await vero.calls(veroToken))).toEqual([`${user} b2`, `${user} a`]);
  });

  it("upgrade: a mailbox named by the credential hands its held jobs (in order) and its ledger to the account's mailbox, and forgets the credential; a letter stored under an old id is re-driven", async () => {
    const { env, veroToken } = await isolatedEnv(fast, { ledger: true });
    const user = unique("u");
    const ready = mailboxConfigFor(env);
    if (!ready.ok) throw new Error(ready.reason);
    const target = { veroApiUrl: ready.config.account.veroApiUrl, veroCredential: ready.credential };
    // The name mailboxes had before: a hash of the URL and the credential, then the user.
    const account = createHash("sha256")
      .update(`${target.veroApiUrl}\n${JSON.stringify(target.veroCredential)}`)
      .digest("hex")
      .slice(0, 16);
    const namespace = env.MAILBOX as DurableObjectNamespace<Mailbox>;
    const old = namespace.get(namespace.idFromName(`${account}\n${user}`));
    // The heir has taken a hand-over from this test's Worker (its credential), as after the deploy.
    await stub(env, user).accept([], ready.config, ready.credential);
    const [done, first, second] = [unique("m"), unique("m"), unique("m")];
    // The old mailbox runs with this test's settings (its VERO_ACCOUNT names the heir).
    await withMailboxEnv(old, env);
    await runInDurableObject(old, async (_instance: Mailbox, state) => {
      const sql = state.storage.sql;
      const config = { target, policy: ready.config.policy, retentionDays: 7, logSampleRate: 0 };
      sql.exec("INSERT INTO state (key, value) VALUES ('config', ?)", JSON.stringify(config));
      sql.exec(
        "INSERT INTO calls (message_id, call, status, done_at) VALUES (?, '0 POST /events/track', 200, ?)",
        done,
        Date.now(),
      );
      for (const [index, messageId] of [first, second].entries())
        sql.exec(
          "INSERT INTO jobs (job_id, message_id, body, at, rseq, seq, received_at) VALUES (?, ?, ?, ?, 0, 1, ?)",
          unique("job"),
          messageId,
          JSON.stringify(trackJob(user, `held-${index}`, messageId)),
          1_000 + index,
          Date.now(),
        );
      await state.storage.setAlarm(Date.now());
    });
    await vero.waitFor(veroToken, (all) => delivered(all).length === 2);
    await postApi(env, "batch", { batch: [track(user, "re-sent", done), track(user, "after")] });
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length >= 3);
    expect(delivered(calls)).toEqual([`${user} held-0`, `${user} held-1`, `${user} after`]);
    const oldRows = await storedText(old);
    expect(oldRows).not.toContain(veroToken);
    expect(oldRows).not.toContain(first);
    // A letter a mailbox stored before the upgrade, under the id it gave then.
    const letterId = `vero-${"a".repeat(24)}-7`;
    const oldLetter = unique("m");
    await storeDeadLetters(env.LEDGER as D1Database, [
      {
        id: letterId,
        source: "vero",
        body: trackJob(user, "from-an-old-letter", oldLetter),
        reason: "Vero answered 400",
        permanent: true,
        attempts: 1,
        failedAt: new Date().toISOString(),
      },
    ]);
    const letter = await getDeadLetter(env.LEDGER as D1Database, letterId);
    if (!letter) throw new Error("the old letter is not readable");
    await redriveDeadLetter({ ...env, VERO_QUEUE: undefined }, letter);
    const after = await vero.waitFor(veroToken, (all) => delivered(all).length >= 4);
    expect(delivered(after).at(-1)).toBe(`${user} from-an-old-letter`);
    expect(await getDeadLetter(env.LEDGER as D1Database, letterId)).toBeUndefined();
  });
});

describe("the Vero queue's consumer and the mailboxes", { timeout: 30_000 }, () => {
  it("acks each message once its user's mailbox committed it, and the mailbox delivers them in the route's order", async () => {
    const { env, veroToken } = await isolatedEnv({}, { queued: true });
    const [ann, bob] = [unique("ann"), unique("bob")];
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [
        { id: "a2", body: { ...trackJob(ann, "a2"), at: 2_000 } },
        { id: "b1", body: { ...trackJob(bob, "b1"), at: 1_000 } },
        { id: "a1", body: { ...trackJob(ann, "a1"), at: 1_000 }, attempts: 3 },
      ],
      env,
    );
    expect(fate).toEqual({ acked: ["a1", "a2", "b1"], retried: {} });
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length === 3);
    expect(delivered(calls).filter((line) => line.startsWith(ann))).toEqual([`${ann} a1`, `${ann} a2`]);
  });

  it("retries, never dead-letters, a Vero job of a newer version than it reads (queued by the next deploy while this one still consumes)", async () => {
    const { env } = await isolatedEnv({}, { queued: true });
    const messageId = unique("m");
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [{ id: "next", body: { ...trackJob(unique("u"), "from-the-future", messageId), v: 3, shape: "unknown" } }],
      env,
    );
    expect(fate.acked).toEqual([]);
    expect(Object.keys(fate.retried)).toEqual(["next"]);
    expect(await deadLetterFor(env.LEDGER as D1Database, messageId)).toBeUndefined();
  });

  it("delivers one user's jobs in route order when two consumer invocations hand them over newer-first", async () => {
    const { env, veroToken } = await isolatedEnv({}, { queued: true });
    const user = unique("u");
    const now = Date.now();
    // The invocation holding the newer message reaches the mailbox first, as when Queues runs two at once.
    const newer = await runBatch(
      QUEUE_NAMES.vero,
      [{ id: "newer", body: { ...trackJob(user, "second"), at: now } }],
      env,
      { deliver: false },
    );
    // The mailbox's alarm runs before the other invocation's hand-over arrives.
    await runDurableObjectAlarm(stub(env, user));
    const older = await runBatch(
      QUEUE_NAMES.vero,
      [{ id: "older", body: { ...trackJob(user, "first"), at: now - 500 } }],
      env,
    );
    expect([newer.acked, older.acked]).toEqual([["newer"], ["older"]]);
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length === 2);
    expect(delivered(calls)).toEqual([`${user} first`, `${user} second`]);
  });

  it("delivers a retried message before the newer one a later batch handed over meanwhile (route order)", async () => {
    const { env, veroToken } = await isolatedEnv({}, { queued: true });
    const user = unique("u");
    const real = env.MAILBOX as NonNullable<Env["MAILBOX"]>;
    const overloaded = {
      idFromName: (name: string) => real.idFromName(name),
      get: () => ({ accept: () => Promise.reject(new Error("Durable Object is overloaded")) }),
    };
    const now = Date.now();
    const first = { id: "first", body: { ...trackJob(user, "first"), at: now - 500 } };
    const refused = await runBatch(QUEUE_NAMES.vero, [first], {
      ...env,
      MAILBOX: overloaded as unknown as NonNullable<Env["MAILBOX"]>,
    });
    expect(Object.keys(refused.retried)).toEqual(["first"]);
    const later = await runBatch(
      QUEUE_NAMES.vero,
      [{ id: "second", body: { ...trackJob(user, "second"), at: now } }],
      env,
      { deliver: false },
    );
    await runDurableObjectAlarm(stub(env, user));
    // Queues redelivers the retried message after the newer one.
    const redelivered = await runBatch(QUEUE_NAMES.vero, [{ ...first, attempts: 2 }], env);
    expect([later.acked, redelivered.acked]).toEqual([["second"], ["first"]]);
    const calls = await vero.waitFor(veroToken, (all) => delivered(all).length === 2);
    expect(delivered(calls)).toEqual([`${user} first`, `${user} second`]);
  });

  it("retries, never acks, the messages whose mailbox cannot take them, and acks the others", async () => {
    const { env } = await isolatedEnv({}, { queued: true });
    const [ok, broken] = [unique("ok"), unique("broken")];
    const real = env.MAILBOX as NonNullable<Env["MAILBOX"]>;
    // A namespace whose calls fail for one user, as an overloaded or unreachable object would.
    const failing = {
      idFromName: (name: string) => real.idFromName(name),
      get: (id: DurableObjectId) =>
        id.equals(real.idFromName(mailboxName(env, broken)))
          ? { accept: () => Promise.reject(new Error("Durable Object is overloaded")) }
          : real.get(id),
    };
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [
        { id: "ok", body: trackJob(ok, "fine") },
        { id: "broken", body: trackJob(broken, "later") },
      ],
      { ...env, MAILBOX: failing as unknown as NonNullable<Env["MAILBOX"]> },
    );
    expect(fate.acked).toEqual(["ok"]);
    expect(Object.keys(fate.retried)).toEqual(["broken"]);
  });
});

function mailboxName(env: Env, user: string): string {
  const ready = mailboxConfigFor(env);
  if (!ready.ok) throw new Error(ready.reason);
  // Same name as the production code computes.
  return mailboxNameOf(ready.config.account, user);
}

import { mailboxName as mailboxNameOf } from "../../../src/outbound/mailbox.ts";
