/**
 * Durable delivery end to end: the bridge under wrangler dev (wrangler.toml
 * as shipped: inbound through the Segment queue, outbound through the users'
 * mailboxes), against the stand-ins over real HTTP. Each bridge has
 * tenants of its own, so what the stand-ins record belongs to one test.
 * QUEUE_RETRY_BASE_SECONDS=1 (the least allowed) retries within seconds.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DEV_SECRETS } from "../../dev/dev-settings.ts";
import { type RecordedCall, StandInClient, segmentMessages } from "../../dev/stand-ins/client.ts";
import { bridgeWithTenants as startTenantBridge, type TenantBridge } from "./tenant-bridge.ts";

const segment = new StandInClient(inject("segmentOrigin"));
const vero = new StandInClient(inject("veroOrigin"));
const ADMIN = "e2e-admin-token-0123456789abcdef01";
const run = `${Date.now().toString(36)}`;

type Bridge = TenantBridge;
const bridgeWithTenants = (config?: string) => startTenantBridge(ADMIN, config);

/**
 * wrangler.toml with every consumer's batch timeout at 0: a lone message's
 * retries then follow each other at once instead of one per batch timeout.
 */
function immediateBatchesConfig(): string {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const text = readFileSync(join(root, "wrangler.toml"), "utf8")
    .replace(/^main = "(.*)"$/m, (_, main: string) => `main = ${JSON.stringify(join(root, main))}`)
    .replace(/^migrations_dir = "(.*)"$/m, (_, dir: string) => `migrations_dir = ${JSON.stringify(join(root, dir))}`)
    .replace(/^max_batch_timeout = \d+$/gm, "max_batch_timeout = 0");
  const path = join(mkdtempSync(join(tmpdir(), "bridge-")), "wrangler.toml");
  writeFileSync(path, text);
  return path;
}

const webhook = (i: number, tag: string) => ({
  type: "opened",
  opened_at: 1_700_000_000 + i,
  message_id: `${run}-${tag}-${i}`,
  user: { id: `user-${i % 20}`, email: `user-${i % 20}@example.com` },
  campaign: { id: 1, name: "Welcome" },
});

const segmentEvent = (i: number, tag: string) => ({
  type: "track",
  messageId: `${run}-${tag}-${i}`,
  userId: `user-${i % 20}`,
  event: "Viewed product",
  properties: { n: i },
  timestamp: new Date(1_700_000_000_000 + i * 1000).toISOString(),
});

async function postWebhook(url: string, body: unknown): Promise<number> {
  const response = await fetch(`${url}/vero/webhook?token=${DEV_SECRETS.VERO_WEBHOOK_TOKEN}`, {
    method: "POST",
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response.status;
}

async function postBatch(url: string, events: unknown[]): Promise<number> {
  const response = await fetch(`${url}/v1/batch`, {
    method: "POST",
    body: JSON.stringify({ batch: events }),
    headers: {
      authorization: `Basic ${btoa(`${DEV_SECRETS.SEGMENT_SHARED_SECRET}:`)}`,
      "content-type": "application/json",
    },
  });
  await response.arrayBuffer();
  return response.status;
}

/** Runs `tasks` with at most `limit` at once, results in order. */
async function limited<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < tasks.length) {
        const index = next++;
        results[index] = await (tasks[index] as () => Promise<T>)();
      }
    }),
  );
  return results;
}

const acceptedIds = (calls: RecordedCall[]) => segmentMessages(calls).map((message) => String(message.messageId));

/** The `n` of each events/track Vero accepted, in the order Vero accepted them. */
const veroEvents = (calls: RecordedCall[]) =>
  calls
    .filter((call) => call.status === 200 && call.path === "/api/v2/events/track")
    .map((call) => call.body as { identity: { id: string }; data: { n: number } });

describe("durable delivery through the Segment queue and the Vero mailboxes (wrangler dev)", () => {
  let flaky: Bridge;
  let burst: Bridge;
  let refusing: Bridge;
  let outage: Bridge;

  beforeAll(async () => {
    [flaky, burst, refusing, outage] = await Promise.all([
      bridgeWithTenants(),
      bridgeWithTenants(),
      bridgeWithTenants(),
      bridgeWithTenants(immediateBatchesConfig()),
    ]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([flaky?.bridge.stop(), burst?.bridge.stop(), refusing?.bridge.stop(), outage?.bridge.stop()]);
  });

  // 5 failures in a row: with the least retry base (1 s) the backoff spans 31 s; the count past which
  // only the horizon ends retries is checked by the schedule's own tests.
  it("delivers an event exactly once after its upstream failed 5 times in a row, in each direction", async () => {
    const { bridge, writeKey, veroToken } = outage;
    await segment.fail(writeKey, { status: 503, times: 5 });
    await vero.fail(veroToken, { status: 503, times: 5 });

    expect(await postWebhook(bridge.url, webhook(1, "outage"))).toBe(202);
    expect(await postBatch(bridge.url, [segmentEvent(1, "outage")])).toBe(200);

    const segmentCalls = await segment.waitFor(writeKey, (calls) => acceptedIds(calls).length >= 1, {
      timeoutMs: 90_000,
      intervalMs: 250,
    });
    const veroCalls = await vero.waitFor(veroToken, (calls) => veroEvents(calls).length >= 1, {
      timeoutMs: 90_000,
      intervalMs: 250,
    });
    // Let any stray retry land before counting.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const [finalSegment, finalVero] = await Promise.all([segment.calls(writeKey), vero.calls(veroToken)]);

    expect(segmentCalls.filter((call) => call.status === 503)).toHaveLength(5);
    expect(acceptedIds(finalSegment)).toHaveLength(1);
    expect(veroCalls.filter((call) => call.status === 503)).toHaveLength(5);
    expect(veroEvents(finalVero).map((event) => event.data.n)).toEqual([1]);
  }, 150_000);

  it("delivers every accepted event through 30% of 500s and 429s, once each, while the senders only see 202 (webhooks) and 200 (/v1/batch)", async () => {
    const { bridge, writeKey, veroToken } = flaky;
    await segment.fail(writeKey, { statuses: [500, 429], rate: 0.3, seed: 15 });
    await vero.fail(veroToken, { statuses: [500, 429], rate: 0.3, seed: 12 });

    const webhookStatuses = limited(
      Array.from({ length: 200 }, (_, i) => () => postWebhook(bridge.url, webhook(i, "flaky"))),
      20,
    );
    const batchStatuses = limited(
      Array.from(
        { length: 20 },
        (_, b) => () =>
          postBatch(
            bridge.url,
            Array.from({ length: 10 }, (_, j) => segmentEvent(b * 10 + j, "flaky")),
          ),
      ),
      5,
    );
    const [webhooks, batches] = await Promise.all([webhookStatuses, batchStatuses]);
    expect(new Set(webhooks)).toEqual(new Set([202]));
    expect(new Set(batches)).toEqual(new Set([200]));

    const segmentCalls = await segment.waitFor(writeKey, (calls) => new Set(acceptedIds(calls)).size >= 200, {
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    const veroCalls = await vero.waitFor(
      veroToken,
      (calls) => new Set(veroEvents(calls).map((e) => e.data.n)).size >= 200,
      {
        timeoutMs: 60_000,
        intervalMs: 250,
      },
    );

    // The failures happened, and were retried through. Seed 15 fails Segment's first request (with a 500);
    // Vero, with a call per event, sees both statuses many times.
    const failures = [...segmentCalls, ...veroCalls].filter((call) => call.status >= 400).map((call) => call.status);
    expect(segmentCalls.some((call) => call.status >= 500)).toBe(true);
    expect(new Set(failures)).toEqual(new Set([500, 429]));

    // None twice: every messageId Segment accepted, it accepted once; every Vero event, once.
    const ids = acceptedIds(segmentCalls);
    expect(ids).toHaveLength(200);
    expect(new Set(ids).size).toBe(200);
    const events = veroEvents(veroCalls).map((event) => event.data.n);
    expect(events).toHaveLength(200);
    expect(new Set(events)).toEqual(new Set(Array.from({ length: 200 }, (_, i) => i)));
  }, 150_000);

  it("sends a burst of 1,000 webhooks to Segment in at most 20 requests", async () => {
    const { bridge, writeKey } = burst;
    const statuses = await limited(
      Array.from({ length: 1000 }, (_, i) => () => postWebhook(bridge.url, webhook(i, "burst"))),
      50,
    );
    expect(new Set(statuses)).toEqual(new Set([202]));
    const calls = await segment.waitFor(writeKey, (all) => new Set(acceptedIds(all)).size >= 1000, {
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    expect(new Set(acceptedIds(calls)).size).toBe(1000);
    expect(calls.length).toBeLessThanOrEqual(20);
  }, 120_000);

  it("keeps what fails for good as a dead letter, and re-drives it once the cause is fixed", async () => {
    const { bridge, writeKey, veroToken } = refusing;
    const admin = (path: string, method = "GET") =>
      fetch(`${bridge.url}/admin${path}`, { method, headers: { authorization: `Bearer ${ADMIN}` } });
    await vero.fail(veroToken, { status: 400 });
    await segment.fail(writeKey, { status: 400 });

    expect(await postBatch(bridge.url, [segmentEvent(1, "refused")])).toBe(200);
    expect(await postWebhook(bridge.url, webhook(1, "refused"))).toBe(202);

    type Listed = { letters: { id: string; source: string; reason: string; permanent: boolean }[] };
    let letters: Listed["letters"] = [];
    for (const deadline = Date.now() + 30_000; letters.length < 2 && Date.now() < deadline; ) {
      letters = ((await (await admin("/dead-letters")).json()) as Listed).letters;
      if (letters.length < 2) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(letters.map((letter) => [letter.source, letter.permanent]).sort()).toEqual([
      ["segment", true],
      ["vero", true],
    ]);
    expect(letters.find((letter) => letter.source === "vero")?.reason).toMatch(/^Vero answered 400/);

    // The operator fixes the cause, then re-drives.
    await Promise.all([vero.heal(veroToken), segment.heal(writeKey)]);
    const veroLetter = letters.find((letter) => letter.source === "vero");
    expect((await admin(`/dead-letters/${veroLetter?.id}/redrive`, "POST")).status).toBe(200);
    const rest = await admin("/dead-letters/redrive", "POST");
    expect(await rest.json()).toMatchObject({ ok: true, redriven: [expect.any(String)] });

    await vero.waitFor(veroToken, (calls) => veroEvents(calls).length === 1, { timeoutMs: 30_000 });
    await segment.waitFor(writeKey, (calls) => acceptedIds(calls).length === 1, { timeoutMs: 30_000 });
    expect(((await (await admin("/dead-letters")).json()) as Listed).letters).toEqual([]);
  }, 90_000);
});
