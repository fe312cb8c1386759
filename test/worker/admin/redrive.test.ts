/**
 * Bulk re-drive within D1's queries per invocation (Workers Free: 50, Paid:
 * 1,000) and Queues' sendBatch limits (100 messages, 256 KB), both enforced
 * by test doubles: Miniflare enforces neither.
 */

import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { type DeadLetter, listDeadLetters, storeDeadLetters } from "../../../src/delivery/dead-letters.ts";
import worker from "../../../src/index.ts";
import type { Env } from "../../../src/shared/env.ts";
import { QUEUE_LIMITS, queuedBytes } from "../../../src/shared/queue-limits.ts";
import { queryLimitedD1 } from "../helpers/d1-query-limit.ts";
import { baseEnv, callWorker, isolatedEnv, vero } from "../helpers/env.ts";
import { trackJob, unique } from "../helpers/queue.ts";
import { PLANS, subrequestLimitedEnv } from "../helpers/subrequest-limit.ts";

const ADMIN = "redrive-admin-token-0123456789abcdef";
const ORIGIN = "http://127.0.0.1:8787";
const ledger = () => baseEnv.LEDGER as D1Database;

/** A queue whose sendBatch refuses what Cloudflare's would: over 100 messages or 256,000 bytes. */
function productionLimitedQueue() {
  const sent: unknown[] = [];
  const batches: number[] = [];
  const queue = {
    send: async () => {
      throw new Error("bulk re-drive must use sendBatch");
    },
    sendBatch: async (messages: { body: unknown }[]) => {
      const bytes = messages.reduce((sum, m) => sum + queuedBytes(JSON.stringify(m.body).length), 0);
      if (messages.length > QUEUE_LIMITS.batchMessages || bytes > QUEUE_LIMITS.batchBytes)
        throw new Error(`sendBatch over Queues' limits: ${messages.length} messages, ${bytes} bytes`);
      batches.push(messages.length);
      sent.push(...messages.map((m) => m.body));
    },
  } as unknown as Queue<unknown>;
  return { queue, sent, batches };
}

async function seed(tag: string, count: number, bodyBytes = 50): Promise<void> {
  const letters: DeadLetter[] = Array.from({ length: count }, (_, i) => ({
    id: `${tag}-${String(i).padStart(4, "0")}`,
    source: "vero",
    body: { v: 1, kind: "vero", n: i, pad: "p".repeat(bodyBytes) },
    reason: `bulk ${tag}`,
    permanent: true,
    attempts: 1,
    failedAt: new Date(Date.UTC(2026, 10, 28, 12, 0, 0, i)).toISOString(),
  }));
  for (let start = 0; start < letters.length; start += 200)
    await storeDeadLetters(ledger(), letters.slice(start, start + 200));
}

const remaining = async (tag: string) => (await listDeadLetters(ledger(), { reason: `bulk ${tag}`, limit: 1 })).total;

describe("bulk re-drive", () => {
  it("re-drives limit=1000 through the JSON route within Workers Paid's 1,000 D1 queries (counting D1 double)", async () => {
    const tag = `json-${Date.now()}`;
    await seed(tag, 1000, 3_000);
    const counted = queryLimitedD1(ledger(), 1000);
    const vero = productionLimitedQueue();
    const env: Env = { ...baseEnv, ADMIN_TOKEN: ADMIN, LEDGER: counted.db, VERO_QUEUE: vero.queue };
    const response = await callWorker(
      new Request(`http://bridge/admin/dead-letters/redrive?reason=${encodeURIComponent(`bulk ${tag}`)}&limit=1000`, {
        method: "POST",
        headers: { Authorization: `Bearer ${ADMIN}` },
      }),
      env,
    );
    const text = await response.text();
    expect(response.status, text).toBe(200);
    expect((JSON.parse(text) as { redriven: string[] }).redriven).toHaveLength(1000);
    expect(vero.sent).toHaveLength(1000);
    // 3 KB bodies: a sendBatch holds about 80 of them (256 KB), so there are more sends than reads.
    expect(vero.batches.length).toBeGreaterThan(10);
    expect(counted.count()).toBeLessThanOrEqual(30);
    expect(await remaining(tag)).toBe(0);
  });

  it("re-drives 100 from the console within Workers Free's 50 D1 queries (counting D1 double)", async () => {
    const tag = `console-${Date.now()}`;
    await seed(tag, 150);
    const plain: Env = { ...baseEnv, ADMIN_TOKEN: ADMIN };
    const signIn = await callWorker(
      new Request(`${ORIGIN}/admin/console/sign-in`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          origin: ORIGIN,
          "cf-connecting-ip": crypto.randomUUID(),
        },
        body: new URLSearchParams({ token: ADMIN }),
      }),
      plain,
    );
    const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0] as string;
    const counted = queryLimitedD1(ledger(), 50);
    const vero = productionLimitedQueue();
    const response = await callWorker(
      new Request(`${ORIGIN}/admin/console/redrive`, {
        method: "POST",
        redirect: "manual",
        headers: { cookie, origin: ORIGIN, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ reason: `bulk ${tag}` }),
      }),
      { ...plain, LEDGER: counted.db, VERO_QUEUE: vero.queue },
    );
    expect(response.status, await response.text()).toBe(303);
    expect(response.headers.get("location")).toBe("/admin?done=redriven&count=100&remaining=50");
    expect(vero.sent).toHaveLength(100);
    expect(counted.count()).toBeLessThanOrEqual(10);
    expect(await remaining(tag)).toBe(50);
  });
});

describe("re-drive when the queue refuses", () => {
  const refusing = (after: number) => {
    let batches = 0;
    return {
      send: async () => {
        throw new Error("Queue send failed: simulated outage");
      },
      sendBatch: async () => {
        if (batches++ >= after) throw new Error("Queue sendBatch failed: simulated outage");
      },
    } as unknown as Queue<unknown>;
  };
  const post = (path: string, env: Env) =>
    callWorker(
      new Request(`http://bridge/admin/dead-letters${path}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${ADMIN}` },
      }),
      env,
    );

  it("answers 503 queue_unavailable, not 500, and keeps the letter, when the queue refuses one", async () => {
    const tag = `refused-one-${Date.now()}`;
    await seed(tag, 1);
    const response = await post(`/${tag}-0000/redrive`, { ...baseEnv, ADMIN_TOKEN: ADMIN, VERO_QUEUE: refusing(0) });
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: { code: "queue_unavailable" } });
    expect(await remaining(tag)).toBe(1);
  });

  it("answers 503 queue_unavailable naming the letters re-driven before the queue refused, and keeps the rest", async () => {
    const tag = `refused-bulk-${Date.now()}`;
    await seed(tag, 100, 5_000);
    const env: Env = { ...baseEnv, ADMIN_TOKEN: ADMIN, VERO_QUEUE: refusing(1) };
    const response = await post(`/redrive?reason=${encodeURIComponent(`bulk ${tag}`)}`, env);
    expect(response.status).toBe(503);
    const body = (await response.json()) as { error: { code: string; details: { redriven: string[] } } };
    expect(body.error.code).toBe("queue_unavailable");
    // 5 KB bodies: the first sendBatch holds about 50 of the 100.
    const sent = body.error.details.redriven.length;
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThan(100);
    expect(await remaining(tag)).toBe(100 - sent);
  });
});

describe("bulk re-drive without a queue", () => {
  it("hands each Vero letter back to its user's mailbox, which delivers it, and forgets the letters", async () => {
    const { env, veroToken } = await isolatedEnv({ ADMIN_TOKEN: ADMIN }, { ledger: true });
    const tag = `mailbox-${Date.now()}`;
    const users = ["ann", "bob", "cyd"].map((name) => unique(name));
    const letters: DeadLetter[] = users.map((user, i) => ({
      id: `${tag}-${i}`,
      source: "vero",
      body: trackJob(user, `redriven-${i}`),
      reason: `bulk ${tag}`,
      permanent: true,
      attempts: 1,
      failedAt: new Date().toISOString(),
    }));
    await storeDeadLetters(ledger(), letters);
    const response = await callWorker(
      new Request(`http://bridge/admin/dead-letters/redrive?reason=${encodeURIComponent(`bulk ${tag}`)}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${ADMIN}` },
      }),
      { ...env, VERO_QUEUE: undefined },
    );
    const text = await response.text();
    expect(response.status, text).toBe(200);
    expect((JSON.parse(text) as { redriven: string[] }).redriven.sort()).toEqual(letters.map((letter) => letter.id));
    const calls = await vero.waitFor(veroToken, (all) => all.length === 3);
    expect(calls.map((call) => (call.body as { event_name: string }).event_name).sort()).toEqual([
      "redriven-0",
      "redriven-1",
      "redriven-2",
    ]);
    expect(await remaining(tag)).toBe(0);
  });
});

describe("re-drive without a queue when the previous ledger cannot be read", () => {
  it("answers 503 ledger_unavailable, not 500, sends nothing and keeps a letter from before the mailboxes", async () => {
    const { env, veroToken } = await isolatedEnv({ ADMIN_TOKEN: ADMIN }, { ledger: true });
    const id = `previous-ledger-down-${Date.now()}`;
    await storeDeadLetters(ledger(), [
      {
        id,
        source: "vero",
        body: { ...trackJob(unique("u"), "old"), v: 1 as const },
        reason: "before the mailboxes",
        permanent: true,
        attempts: 1,
        failedAt: new Date().toISOString(),
      },
    ]);
    // The dead-letter store answers; only D1's vero_calls (the previous ledger) fails.
    const db = ledger();
    const previousLedgerDown = {
      prepare: (query: string) => {
        if (query.includes("vero_calls")) throw new Error("D1_ERROR: the database is unavailable");
        return db.prepare(query);
      },
      batch: (statements: D1PreparedStatement[]) => db.batch(statements),
    } as unknown as D1Database;
    const response = await callWorker(
      new Request(`http://bridge/admin/dead-letters/${id}/redrive`, {
        method: "POST",
        headers: { Authorization: `Bearer ${ADMIN}` },
      }),
      { ...env, VERO_QUEUE: undefined, LEDGER: previousLedgerDown },
    );
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: { code: "ledger_unavailable" } });
    expect(await vero.calls(veroToken)).toEqual([]);
    expect(
      (await listDeadLetters(ledger(), { reason: "before the mailboxes", limit: 1000 })).letters.map((l) => l.id),
    ).toContain(id);
  });
});

describe("bulk re-drive within the subrequest limits", () => {
  it("re-drives 1,000 letters of 1,000 users to their mailboxes within Workers Free's 1,000 subrequests (and so Paid's 10,000), against a double that enforces them: 900 a page, the cursor leads to the rest", async () => {
    const tag = `limits-${Date.now()}`;
    const letters: DeadLetter[] = Array.from({ length: 1000 }, (_, i) => ({
      id: `${tag}-${String(i).padStart(4, "0")}`,
      source: "vero",
      body: trackJob(`${tag}-user-${i}`, "Re-driven"),
      reason: `bulk ${tag}`,
      permanent: true,
      attempts: 1,
      failedAt: new Date(Date.UTC(2026, 10, 28, 12, 0, 0, i)).toISOString(),
    }));
    for (let start = 0; start < letters.length; start += 200)
      await storeDeadLetters(ledger(), letters.slice(start, start + 200));
    const page = async (cursor?: string) => {
      const limited = subrequestLimitedEnv({ ...baseEnv, ADMIN_TOKEN: ADMIN, VERO_QUEUE: undefined }, PLANS.free);
      const query = new URLSearchParams({ reason: `bulk ${tag}`, limit: "1000", ...(cursor ? { cursor } : {}) });
      const ctx = createExecutionContext();
      const response = await worker.fetch(
        new Request(`http://bridge/admin/dead-letters/redrive?${query}`, {
          method: "POST",
          headers: { Authorization: `Bearer ${ADMIN}` },
        }),
        limited.env,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      const text = await response.text();
      expect(response.status, text).toBe(200);
      expect(limited.count()).toBeLessThanOrEqual(PLANS.free.services);
      return { ...(JSON.parse(text) as { redriven: string[]; cursor?: string }), accepted: limited.accepted.length };
    };
    const first = await page();
    expect(first.redriven).toHaveLength(900);
    expect(first.accepted).toBe(900);
    expect(first.cursor).toEqual(expect.any(String));
    const second = await page(first.cursor);
    expect(second.redriven).toHaveLength(100);
    expect(second.cursor).toBeUndefined();
    expect(await remaining(tag)).toBe(0);
  }, 60_000);
});
