/**
 * The inline inbound path (no SEGMENT_QUEUE: the webhook request is the
 * delivery) counts its outcomes in the ledger as the Segment consumer does,
 * so readiness and the failure-rate alert see its failures.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { runAlerts } from "../../../src/admin/alerts/run.ts";
import { readCounters } from "../../../src/delivery/ledger.ts";
import type { Env } from "../../../src/shared/env.ts";
import { forgetReadiness } from "../../../src/shared/health.ts";
import clicked from "../../fixtures/vero/clicked.json";
import { alertWebhook, clearAlertTables, ledger, receiver } from "../helpers/alerts.ts";
import { callWorker, expectJsonError, isolatedEnv, segment } from "../helpers/env.ts";

const TOKEN = "dev-vero-webhook-token-for-local-use";

const postWebhook = (env: Env) =>
  callWorker(
    new Request(`http://bridge/vero/webhook?token=${TOKEN}`, { method: "POST", body: JSON.stringify(clicked) }),
    env,
  );

const inboundCounts = async () =>
  (await readCounters(ledger(), { since: new Date(Date.now() - 3_600_000) }))
    .filter((row) => row.direction === "inbound")
    .map(({ name, outcome, count }) => ({ name, outcome, count }));

beforeEach(async () => {
  await clearAlertTables();
  forgetReadiness();
});

describe("the inline inbound path counts its outcomes", () => {
  it("counts a delivery, and a refusal Vero is asked to resend as retried", async () => {
    const { env, writeKey } = await isolatedEnv({}, { ledger: true });
    expect((await postWebhook(env)).status).toBe(200);
    await segment.fail(writeKey, { status: 401 });
    await expectJsonError(await postWebhook(env), 503);
    expect(await inboundCounts()).toEqual([
      { name: "Email Link Clicked", outcome: "delivered", count: 1 },
      { name: "Email Link Clicked", outcome: "retried", count: 1 },
    ]);
  });

  it("makes GET /health/ready name the inbound failure rate when inline deliveries fail", async () => {
    const { env, writeKey } = await isolatedEnv({ ALERT_MIN_ATTEMPTS: "2" }, { ledger: true });
    await segment.fail(writeKey, { status: 401 });
    for (let i = 0; i < 2; i++) await expectJsonError(await postWebhook(env), 503);
    const body = await expectJsonError(await callWorker(new Request("http://bridge/health/ready"), env), 503);
    expect((body.error.details as { reasons: string[] }).reasons).toEqual([
      expect.stringContaining("Inbound (Vero → Segment): 100% of deliveries failed over the last 15 minutes (2 of 2)"),
    ]);
  });

  it("makes the failure-rate alert fire when inline deliveries fail", async () => {
    const hook = await alertWebhook();
    const { env, writeKey } = await isolatedEnv(
      { ALERT_MIN_ATTEMPTS: "2", ALERT_WEBHOOK_URL: hook.url },
      { ledger: true },
    );
    await segment.fail(writeKey, { status: 401 });
    for (let i = 0; i < 2; i++) await expectJsonError(await postWebhook(env), 503);
    const run = await runAlerts(env);
    expect(run.sent).toEqual([{ condition: "failure-rate:inbound", kind: "alert", delivered: true }]);
    const texts = (await receiver.calls(hook.key)).map((call) => (call.body as { text: string }).text);
    expect(texts).toHaveLength(1);
    expect(texts[0]).toContain("Inbound (Vero → Segment): 100% of deliveries failed");
  });
});
