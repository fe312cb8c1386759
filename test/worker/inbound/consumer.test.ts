/**
 * The Segment queue's consumer: worker.queue on batches made with
 * createMessageBatch, real analytics-node, real HTTP to the Segment
 * stand-in (a fresh tenant per test, failures switched on per tenant).
 */
import { describe, expect, it } from "vitest";
import { segmentMessages } from "../../../dev/stand-ins/client.ts";
import { getDeadLetter } from "../../../src/delivery/dead-letters.ts";
import { QUEUE_NAMES } from "../../../src/delivery/settlement.ts";
import { segmentJob } from "../../../src/inbound/job.ts";
import type { SegmentMessage } from "../../../src/inbound/map.ts";
import { isolatedEnv, segment } from "../helpers/env.ts";
import { runBatch } from "../helpers/queue.ts";

const ledger = (env: { LEDGER?: D1Database }) => env.LEDGER as D1Database;

let counter = 0;
function track(userId: string, extra: Partial<SegmentMessage> = {}): SegmentMessage {
  counter++;
  return {
    type: "track",
    event: "Email Opened",
    userId,
    properties: { campaign_id: String(counter) },
    timestamp: "2026-11-28T12:00:00.000Z",
    context: { integration: { name: "vero-segment-bridge", version: "0.1.0" }, traits: { email: "a@example.com" } },
    integrations: { Vero: false },
    messageId: `vero-consumer-${Date.now()}-${counter}`,
    ...extra,
  } as SegmentMessage;
}

const queued = (id: string, message: SegmentMessage, attempts = 1) => ({ id, body: segmentJob(message), attempts });

describe("the Segment queue consumer", () => {
  it("sends a whole batch as one /v1/batch request and acks every message", async () => {
    const { env, writeKey } = await isolatedEnv({}, { ledger: true });
    const messages = [track("u1"), track("u2"), track("u1")];
    const fate = await runBatch(
      QUEUE_NAMES.segment,
      messages.map((message, index) => queued(`m${index}`, message)),
      env,
    );
    expect(fate).toEqual({ acked: ["m0", "m1", "m2"], retried: {} });
    const calls = await segment.calls(writeKey);
    expect(calls.map((call) => [call.path, call.status])).toEqual([["/v1/batch", 200]]);
    expect(segmentMessages(calls).map((message) => message.messageId)).toEqual(messages.map((m) => m.messageId));
  });

  it("retries every message of a batch Segment refused for now, with delays that grow with the attempts", async () => {
    const { env, writeKey } = await isolatedEnv({}, { ledger: true });
    await segment.fail(writeKey, { status: 500 });
    const fate = await runBatch(
      QUEUE_NAMES.segment,
      [queued("first", track("u1"), 1), queued("third", track("u2"), 3), queued("sixth", track("u3"), 6)],
      env,
    );
    expect(fate).toEqual({ acked: [], retried: { first: 5, third: 20, sixth: 160 } });
    // One attempt per invocation: the queue's backoff does the retrying.
    expect((await segment.calls(writeKey)).map((call) => call.status)).toEqual([500]);
  });

  it("waits at least as long as a 429's Retry-After", async () => {
    const { env, writeKey } = await isolatedEnv({}, { ledger: true });
    await segment.fail(writeKey, { status: 429, retryAfter: 42 });
    const fate = await runBatch(QUEUE_NAMES.segment, [queued("limited", track("u1"))], env);
    expect(fate.retried).toEqual({ limited: 42 });
  });

  it("shortens the delays with QUEUE_RETRY_BASE_SECONDS", async () => {
    const { env, writeKey } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "1" });
    await segment.fail(writeKey, { status: 503 });
    const fate = await runBatch(QUEUE_NAMES.segment, [queued("a", track("u1"), 1), queued("b", track("u2"), 4)], env);
    expect(fate.retried).toEqual({ a: 1, b: 8 });
  });

  it("dead-letters a malformed body and an event Segment can never take, and delivers the rest", async () => {
    const { env, writeKey } = await isolatedEnv({}, { ledger: true });
    const good = track("u1");
    const huge = track("u2", { properties: { blob: "x".repeat(40 * 1024) } } as Partial<SegmentMessage>);
    const fate = await runBatch(
      QUEUE_NAMES.segment,
      [
        { id: "bad-body", body: { v: 1, kind: "segment", message: { type: "track" } } },
        queued("too-big", huge),
        queued("fine", good),
      ],
      env,
    );
    expect(fate).toEqual({ acked: ["bad-body", "fine", "too-big"], retried: {} });
    expect(segmentMessages(await segment.calls(writeKey)).map((message) => message.messageId)).toEqual([
      good.messageId,
    ]);
    expect(await getDeadLetter(ledger(env), "bad-body")).toMatchObject({
      source: "segment",
      permanent: true,
      reason: expect.stringMatching(/^malformed Segment queue message/),
    });
    expect(await getDeadLetter(ledger(env), "too-big")).toMatchObject({
      source: "segment",
      permanent: true,
      reason: expect.stringMatching(/over Segment's 32 KB/),
      body: segmentJob(huge),
    });
  });

  it("splits a batch over Segment's 500 KB into requests under it", async () => {
    const { env, writeKey } = await isolatedEnv({}, { ledger: true });
    // 30 events of ~25 KB: ~750 KB in all.
    const messages = Array.from({ length: 30 }, (_, index) =>
      track(`u${index}`, { properties: { blob: "y".repeat(25 * 1024) } } as Partial<SegmentMessage>),
    );
    const fate = await runBatch(
      QUEUE_NAMES.segment,
      messages.map((message, index) => queued(`big-${index}`, message)),
      env,
    );
    expect(fate.retried).toEqual({});
    expect(fate.acked).toHaveLength(30);
    const calls = await segment.calls(writeKey);
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls.every((call) => call.status === 200)).toBe(true);
    expect(new Set(segmentMessages(calls).map((message) => message.messageId)).size).toBe(30);
  });

  it("sends a message enqueued twice once, and acks both copies", async () => {
    const { env, writeKey } = await isolatedEnv({}, { ledger: true });
    const message = track("u1");
    const fate = await runBatch(QUEUE_NAMES.segment, [queued("copy-1", message), queued("copy-2", message)], env);
    expect(fate.acked).toEqual(["copy-1", "copy-2"]);
    expect(segmentMessages(await segment.calls(writeKey))).toHaveLength(1);
  });

  it("keeps messages (retries) while inbound is not configured, and while Segment refuses the write key", async () => {
    const { env: unconfigured } = await isolatedEnv({ SEGMENT_WRITE_KEY: "" });
    expect((await runBatch(QUEUE_NAMES.segment, [queued("waits", track("u1"))], unconfigured)).retried).toEqual({
      waits: 5,
    });
    const { env: wrongKey } = await isolatedEnv({ SEGMENT_WRITE_KEY: "not-a-tenant" });
    expect((await runBatch(QUEUE_NAMES.segment, [queued("waits-too", track("u1"))], wrongKey)).retried).toEqual({
      "waits-too": 5,
    });
  });
});

describe("the queue handler", () => {
  it("retries, never acks, a batch from a queue it has no consumer for", async () => {
    const { env } = await isolatedEnv({}, { ledger: true });
    const fate = await runBatch("some-other-queue", [{ id: "stray", body: {} }], env);
    expect(fate).toEqual({ acked: [], retried: { stray: undefined } });
  });
});
