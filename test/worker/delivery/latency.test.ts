/**
 * Delivery latency: from the bridge's receipt to the upstream's acceptance,
 * kept as a histogram per 5-minute bucket, read back as p50/p95/p99 by the
 * JSON admin API and the console, and alerted on above ALERT_LATENCY_SECONDS.
 * Alone in its file, so that no other test's latencies arrive meanwhile.
 */
import { beforeEach, describe, expect, it, vi } from "vitest";
import { runAlerts } from "../../../src/admin/alerts/run.ts";
import { binOf, type Histogram, percentile, summarise } from "../../../src/delivery/latency.ts";
import { Counters, readLatency as readHistograms } from "../../../src/delivery/ledger.ts";
import { QUEUE_NAMES } from "../../../src/delivery/settlement.ts";
import type { Env } from "../../../src/shared/env.ts";
import clicked from "../../fixtures/vero/clicked.json";
import { alertWebhook, clearAlertTables, ledger, receiver } from "../helpers/alerts.ts";
import { sessionCookie, visit } from "../helpers/console.ts";
import { callWorker, isolatedEnv, vero } from "../helpers/env.ts";
import { runBatch, trackJob, unique } from "../helpers/queue.ts";

interface LatencyBody {
  ok: true;
  since: string;
  until: string;
  latency: Record<
    "inbound" | "outbound",
    { count: number; p50Ms: number | null; p95Ms: number | null; p99Ms: number | null; bins: unknown[] }
  >;
}

const readLatency = async (env: Env, query = ""): Promise<LatencyBody> => {
  const response = await callWorker(
    new Request(`http://bridge/admin/latency${query}`, { headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` } }),
    env,
  );
  expect(response.status).toBe(200);
  return (await response.json()) as LatencyBody;
};

beforeEach(async () => {
  await clearAlertTables();
  await ledger().prepare("DELETE FROM latency").run();
});

describe("the latency histogram", () => {
  it("bins by fixed log-spaced bounds from 100 ms to 48 hours, the last bin open", () => {
    expect([0, 99, 100, 1_999, 2_000, 300_000, 172_800_000, 1e12, -5].map(binOf)).toEqual([
      0, 0, 100, 1_000, 2_000, 300_000, 172_800_000, 172_800_000, 0,
    ]);
  });

  it("reads percentiles by interpolating within a bin", () => {
    const histogram: Histogram = new Map([
      [1_000, 90],
      [5_000, 10],
    ]);
    expect(percentile(histogram, 0.5)).toBe(1_556);
    expect(percentile(histogram, 0.95)).toBe(7_500);
    expect(percentile(histogram, 0.99)).toBe(9_500);
    expect(summarise(new Map())).toEqual({ count: 0, p50Ms: null, p95Ms: null, p99Ms: null });
    expect(percentile(new Map([[172_800_000, 3]]), 0.99)).toBe(172_800_000);
  });

  it("adds a batch's latencies to one row per bucket, direction and bin, in one statement", async () => {
    const counters = new Counters();
    for (const ms of [150, 180, 4_000]) counters.addLatency("inbound", ms);
    counters.addLatency("outbound", 150);
    const at = new Date("2030-01-01T10:07:00.000Z");
    const statements = counters.statements(ledger(), at);
    expect(statements).toHaveLength(1);
    await ledger().batch(statements);
    await ledger().batch(counters.statements(ledger(), at));
    const { results } = await ledger()
      .prepare("SELECT bucket, direction, ge_ms, count FROM latency ORDER BY direction, ge_ms")
      .all();
    expect(results).toEqual([
      { bucket: "2030-01-01T10:05:00.000Z", direction: "inbound", ge_ms: 100, count: 4 },
      { bucket: "2030-01-01T10:05:00.000Z", direction: "inbound", ge_ms: 2_000, count: 2 },
      { bucket: "2030-01-01T10:05:00.000Z", direction: "outbound", ge_ms: 100, count: 2 },
    ]);
  });
});

describe("delivery latency end to end", () => {
  it("measures the inline inbound path, readable at GET /admin/latency", async () => {
    const { env } = await isolatedEnv({}, { ledger: true });
    const response = await callWorker(
      new Request("http://bridge/vero/webhook?token=dev-vero-webhook-token-for-local-use", {
        method: "POST",
        body: JSON.stringify(clicked),
      }),
      env,
    );
    expect(response.status).toBe(200);
    const body = await readLatency(env);
    expect(body.latency.inbound.count).toBe(1);
    expect(body.latency.inbound.p95Ms).toEqual(expect.any(Number));
    expect(body.latency.outbound).toEqual({ count: 0, p50Ms: null, p95Ms: null, p99Ms: null, bins: [] });
  });

  it("alerts when the Vero stand-in answers slowly: p95 above ALERT_LATENCY_SECONDS, shown in the API and console", {
    timeout: 40_000,
  }, async () => {
    const hook = await alertWebhook();
    const { env, veroToken } = await isolatedEnv(
      { ALERT_LATENCY_SECONDS: "1", ALERT_WEBHOOK_URL: hook.url },
      { ledger: true },
    );
    await vero.fail(veroToken, { delayMs: 1_200, times: 0 });
    const user = unique("slow");
    await runBatch(
      QUEUE_NAMES.vero,
      [
        { id: "l1", body: trackJob(user, "Slow One") },
        { id: "l2", body: trackJob(user, "Slow Two") },
      ],
      env,
    );
    // The mailbox reports to a counter shard, which writes to D1 a few seconds later.
    await vi.waitFor(async () => expect((await readLatency(env)).latency.outbound.count).toBe(2), {
      timeout: 30_000,
      interval: 250,
    });
    const { outbound } = (await readLatency(env)).latency;
    expect(outbound.p95Ms).toBeGreaterThan(1_000);

    const run = await runAlerts(env);
    expect(run.sent).toEqual([{ condition: "latency:outbound", kind: "alert", delivered: true }]);
    const texts = (await receiver.calls(hook.key)).map((call) => (call.body as { text: string }).text);
    expect(texts).toHaveLength(1);
    expect(texts[0]).toContain("Outbound (Segment → Vero): 95% of deliveries over the last 15 minutes took up to");
    expect(texts[0]).toContain("threshold 1 s (ALERT_LATENCY_SECONDS)");

    const page = await (await visit("/admin", await sessionCookie(env.ADMIN_TOKEN as string, env), env)).text();
    expect(page).toContain('id="latency-table"');
    expect(page).toMatch(/data-direction="outbound" data-range="day">[\s\S]*?data-field="count">2</);
  });

  it("stays quiet while p95 is within ALERT_LATENCY_SECONDS", async () => {
    const hook = await alertWebhook();
    const { env } = await isolatedEnv({ ALERT_LATENCY_SECONDS: "300", ALERT_WEBHOOK_URL: hook.url }, { ledger: true });
    const counters = new Counters();
    for (let i = 0; i < 20; i++) counters.addLatency("outbound", 250_000);
    await ledger().batch(counters.statements(ledger()));
    expect((await runAlerts(env)).sent).toEqual([]);
  });
});

describe("before migrations/0005_latency.sql is applied", () => {
  it("reads no latency rather than failing the console and the alerts", async () => {
    const db = ledger();
    await db.prepare("DROP TABLE latency").run();
    try {
      expect(await readHistograms(db, { since: new Date(0) })).toEqual({ inbound: new Map(), outbound: new Map() });
    } finally {
      await db
        .prepare(
          `CREATE TABLE latency (bucket TEXT NOT NULL, direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
             ge_ms INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (bucket, direction, ge_ms)) WITHOUT ROWID`,
        )
        .run();
    }
  });
});
