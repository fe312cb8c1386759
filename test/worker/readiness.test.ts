/**
 * GET /health/ready: 200 when the bridge can do its job, 503 with one
 * reason per failing check otherwise, never a secret; GET /health stays 200.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { DEV_SECRETS } from "../../dev/dev-settings.ts";
import { cachedReadinessOf, forgetReadiness, READINESS_CACHE_MS } from "../../src/health.ts";
import type { Env } from "../../src/shared/env.ts";
import { clearAlertTables, count, createStalledMailboxesTable, ledger, unreachableLedger } from "./helpers/alerts.ts";
import { queryLimitedD1 } from "./helpers/d1-query-limit.ts";
import { baseEnv, callWorker, expectJsonError } from "./helpers/env.ts";

const ready = (env: Env) => callWorker(new Request("http://bridge/health/ready"), env);

async function reasonsOf(response: Response): Promise<string[]> {
  const body = await expectJsonError(response, 503);
  expect(body.error.code).toBe("not_ready");
  return (body.error.details as { reasons: string[] }).reasons;
}

beforeEach(async () => {
  await clearAlertTables();
  forgetReadiness();
});

describe("GET /health/ready", () => {
  it("answers 200 when every direction is configured, the ledger answers and deliveries succeed", async () => {
    await count("outbound", "delivered", 100, new Date());
    const response = await ready(baseEnv);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.json()).toMatchObject({ status: "ready" });
  });

  it("answers 503 naming the setting an unconfigured direction lacks", async () => {
    const { SEGMENT_SHARED_SECRET: _, ...noOutbound } = baseEnv;
    const reasons = await reasonsOf(await ready(noOutbound));
    expect(reasons).toEqual(["outbound is not configured: set SEGMENT_SHARED_SECRET"]);
  });

  it("answers 503 for each consumer without its upstream's settings", async () => {
    const { VERO_AUTH_TOKEN: _, ...noVero } = baseEnv;
    const reasons = await reasonsOf(await ready(noVero));
    expect(reasons).toContain("the Vero consumer is not configured: set VERO_AUTH_TOKEN or VERO_TRACKING_API_KEY");
  });

  it("answers 503 naming MAILBOX when outbound is configured but its mailboxes are not bound", async () => {
    const reasons = await reasonsOf(await ready({ ...baseEnv, MAILBOX: undefined }));
    expect(reasons).toEqual(["the MAILBOX Durable Object namespace is not bound (see wrangler.toml)"]);
  });

  it("answers 503 when the ledger cannot be read", async () => {
    const reasons = await reasonsOf(await ready({ ...baseEnv, LEDGER: unreachableLedger() }));
    expect(reasons).toEqual([expect.stringContaining("the ledger (D1 binding LEDGER) cannot be read")]);
  });

  it("answers 503 when the ledger is not bound", async () => {
    const { LEDGER: _, ...unbound } = baseEnv;
    expect(await reasonsOf(await ready(unbound))).toEqual([expect.stringContaining("LEDGER D1 database is not bound")]);
  });

  it("answers 503 when a direction's deliveries failed above the threshold over the last 15 minutes", async () => {
    await count("inbound", "retried", 30, new Date());
    await count("inbound", "delivered", 10, new Date());
    const reasons = await reasonsOf(await ready(baseEnv));
    expect(reasons).toEqual([expect.stringContaining("Inbound (Vero → Segment): 75% of deliveries failed")]);
  });

  it("answers 503 when a user's deliveries wait longer than ALERT_STALLED_MINUTES: stalled, capped or a backlog with nothing failing", async () => {
    await count("outbound", "delivered", 100, new Date());
    await createStalledMailboxesTable();
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000).toISOString();
    await ledger()
      .prepare(
        "INSERT INTO stalled_mailboxes (mailbox, oldest_at, since, reason, updated_at) VALUES ('a1', ?1, ?1, ?2, ?1)",
      )
      .bind(twoHoursAgo, "backlog: 900 jobs waiting, none failed")
      .run();
    expect(await reasonsOf(await ready(baseEnv))).toEqual(["1 user's deliveries stalled for over 60 minutes"]);
  });

  it("never shows a secret, while GET /health stays 200", async () => {
    const text = await (await ready({})).text();
    for (const secret of Object.values(DEV_SECRETS)) expect(text).not.toContain(secret);
    expect(text).toContain("inbound is not configured");
    expect((await callWorker(new Request("http://bridge/health"), {})).status).toBe(200);
  });

  it("answers HEAD like GET and refuses other methods", async () => {
    const head = await callWorker(new Request("http://bridge/health/ready", { method: "HEAD" }), baseEnv);
    expect(head.status).toBe(200);
    await expectJsonError(await callWorker(new Request("http://bridge/health/ready", { method: "POST" })), 405);
  });

  it("answers from a cache of at most 30 s: callers meanwhile cost no D1 query", async () => {
    const counted = queryLimitedD1(baseEnv.LEDGER as D1Database, 1_000);
    const env = { ...baseEnv, LEDGER: counted.db };
    for (let i = 0; i < 5; i++) expect((await ready(env)).status).toBe(200);
    // One check: the recent outcomes and the stalled users.
    expect(counted.count()).toBe(2);
  });

  it("checks again once the cached answer is 30 s old, and sees what changed", async () => {
    const counted = queryLimitedD1(baseEnv.LEDGER as D1Database, 1_000);
    const env = { ...baseEnv, ALERT_MIN_ATTEMPTS: "1", LEDGER: counted.db };
    const t0 = Date.now();
    expect((await cachedReadinessOf(env, t0)).ready).toBe(true);
    await count("inbound", "retried", 5, new Date());
    expect((await cachedReadinessOf(env, t0 + READINESS_CACHE_MS - 1)).ready).toBe(true);
    expect(counted.count()).toBe(2);
    expect((await cachedReadinessOf(env, t0 + READINESS_CACHE_MS)).reasons).toEqual([
      expect.stringContaining("Inbound (Vero → Segment): 100% of deliveries failed"),
    ]);
    expect(counted.count()).toBe(4);
  });
});
