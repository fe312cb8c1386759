/**
 * Cloudflare Queues' limits, through the outbound route in queue mode, with
 * a test double of the Queue producer that enforces the production limits
 * (Miniflare's are looser: 288,000 bytes per batch), counted in Queues'
 * units: 1 KB = 1,000 bytes, about 100 bytes of metadata per message.
 */
import { describe, expect, it } from "vitest";
import { DEV_SECRETS } from "../../../dev/dev-settings.ts";
import type { Env } from "../../../src/shared/env.ts";
import { basic, callWorker, isolatedEnv } from "../helpers/env.ts";

const METADATA_BYTES = 100;
const utf8 = new TextEncoder();
const counted = (body: unknown) => utf8.encode(JSON.stringify(body)).length + METADATA_BYTES;

/** A Queue producer that refuses what production's Queues refuses, and keeps what it accepts. */
class ProductionLimitedQueue {
  readonly accepted: unknown[] = [];
  readonly batches: number[][] = [];
  constructor(private readonly enforce = true) {}

  async send(body: unknown): Promise<void> {
    await this.sendBatch([{ body }]);
  }

  async sendBatch(messages: Iterable<{ body: unknown }>): Promise<void> {
    const list = [...messages];
    const sizes = list.map((message) => counted(message.body));
    if (this.enforce) {
      if (list.length > 100) throw new Error(`sendBatch: ${list.length} messages, over 100`);
      for (const size of sizes) if (size > 128_000) throw new Error(`message of ${size} bytes, over 128,000`);
      const total = sizes.reduce((sum, size) => sum + size, 0);
      if (total > 256_000) throw new Error(`sendBatch of ${total} bytes, over 256,000`);
    }
    this.batches.push(sizes);
    for (const message of list) this.accepted.push(message.body);
  }
}

const track = (messageId: string, padding: number) => ({
  type: "track",
  messageId,
  userId: `user-${messageId}`,
  event: "Padded",
  properties: { pad: "x".repeat(padding) },
});

/** To /segment: /v1/* would refuse these events itself, over Segment's 32 KB per event. */
async function post(env: Env, events: unknown[]): Promise<Response> {
  return callWorker(
    new Request("http://bridge/segment", {
      method: "POST",
      body: JSON.stringify(events),
      headers: { authorization: basic(DEV_SECRETS.SEGMENT_SHARED_SECRET), "content-type": "application/json" },
    }),
    env,
  );
}

/**
 * Events whose queue messages count exactly `targets` bytes each: sent once
 * to an unlimited double to measure, then padded by the difference (the
 * padding is ASCII, one byte a character, and moves nothing else).
 */
async function sized(env: Env, tag: string, targets: number[]): Promise<unknown[]> {
  const ids = targets.map((_, i) => `${tag}-${i}`);
  const probe = new ProductionLimitedQueue(false);
  await (
    await post(
      { ...env, VERO_QUEUE: probe as unknown as Queue },
      ids.map((id) => track(id, 1000)),
    )
  ).text();
  const measured = probe.accepted.map(counted);
  return ids.map((id, i) => track(id, 1000 + (targets[i] as number) - (measured[i] as number)));
}

async function run(tag: string, targets: number[]) {
  const { env } = await isolatedEnv({}, { queued: true });
  const events = await sized(env, tag, targets);
  const queue = new ProductionLimitedQueue();
  const response = await post({ ...env, VERO_QUEUE: queue as unknown as Queue }, events);
  const body = (await response.json()) as { results?: { messageId: string; outcome: string; error?: string }[] };
  const queuedIds = queue.accepted.map((job) => (job as { messageId: string }).messageId);
  return { status: response.status, body, queue, queuedIds };
}

describe("queue limits, with a Queue double enforcing production's limits", () => {
  it("queues a message of 127,999 bytes and refuses one of 128,001 as invalid, naming the limit", async () => {
    const { status, body, queue, queuedIds } = await run("msg", [127_999, 128_001]);
    expect(status).toBe(202);
    expect(queue.batches).toEqual([[127_999]]);
    expect(queuedIds).toEqual(["msg-0"]);
    expect(body.results?.map((result) => result.outcome)).toEqual(["queued", "invalid"]);
    expect(body.results?.[1]?.error).toBe(
      "the event's Vero calls make a queue message of 128001 bytes, over Queues' 128000 bytes per message",
    );
  });

  it("sends 255,999 bytes in one sendBatch and 256,001 in two, each event once", async () => {
    const under = await run("under", [100_000, 100_000, 55_999]);
    expect(under.status).toBe(202);
    expect(under.queue.batches).toEqual([[100_000, 100_000, 55_999]]);
    expect(under.queuedIds).toEqual(["under-0", "under-1", "under-2"]);

    const over = await run("over", [100_000, 100_000, 56_001]);
    expect(over.status).toBe(202);
    expect(over.queue.batches).toEqual([[100_000, 100_000], [56_001]]);
    expect(over.queuedIds).toEqual(["over-0", "over-1", "over-2"]);
  });

  it("sends 100 messages in one sendBatch and 101 in two, each event once", async () => {
    const hundred = await run(
      "hundred",
      Array.from({ length: 100 }, () => 1_500),
    );
    expect(hundred.status).toBe(202);
    expect(hundred.queue.batches.map((batch) => batch.length)).toEqual([100]);
    expect(new Set(hundred.queuedIds).size).toBe(100);

    const more = await run(
      "more",
      Array.from({ length: 101 }, () => 1_500),
    );
    expect(more.status).toBe(202);
    expect(more.queue.batches.map((batch) => batch.length)).toEqual([100, 1]);
    expect(more.queuedIds).toEqual(Array.from({ length: 101 }, (_, i) => `more-${i}`));
  });
});
