import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { getDeadLetter } from "../../../src/delivery/dead-letters.ts";
import { DEFAULT_RETRY_POLICY, keepDelaySeconds } from "../../../src/delivery/retry-schedule.ts";
import { consumeDeadLetterQueue, MAX_RETRIES, type Outcome, Settlement } from "../../../src/delivery/settlement.ts";
import type { Env } from "../../../src/shared/env.ts";
import { parseSettings } from "../../../src/shared/settings.ts";
import { baseEnv } from "../helpers/env.ts";
import { runBatch } from "../helpers/queue.ts";

const ledger = () => baseEnv.LEDGER as D1Database;

/**
 * Settles one message with one outcome and returns what the runtime was
 * told. getQueueResult does not report retry delays, so `retry` is spied on
 * (and still called) to see the delay asked for.
 */
async function settleOne(
  id: string,
  attempts: number,
  outcome: Outcome,
  options: { withoutStore?: boolean; enqueuedHoursAgo?: number } = {},
) {
  const timestamp = new Date(Date.now() - (options.enqueuedHoursAgo ?? 0) * 3_600_000);
  const batch = createMessageBatch("vero-segment-bridge-vero", [
    { id, timestamp, attempts, body: { kind: "vero", n: id } },
  ]);
  const ctx = createExecutionContext();
  const [message] = batch.messages;
  if (!message) throw new Error("no message");
  const retry = vi.spyOn(message, "retry");
  const settlement = new Settlement("vero");
  settlement.settle(message, outcome);
  await settlement.flush(options.withoutStore ? undefined : ledger());
  const result = await getQueueResult(batch, ctx);
  return {
    explicitAcks: result.explicitAcks,
    retryMessages: result.retryMessages.map((retried) => ({
      ...retried,
      delaySeconds: retry.mock.calls[0]?.[0]?.delaySeconds,
    })),
  };
}

describe("retry settings", () => {
  const policyOf = (env: Partial<Env>) => parseSettings(env as Env).retry;

  it("starts from QUEUE_RETRY_BASE_SECONDS when set, and from 5 s when it is unset or invalid", () => {
    expect(policyOf({ QUEUE_RETRY_BASE_SECONDS: " 2 " }).policy.baseSeconds).toBe(2);
    expect(policyOf({ QUEUE_RETRY_BASE_SECONDS: "1" }).policy.baseSeconds).toBe(1);
    for (const value of [undefined, ""])
      expect(policyOf({ QUEUE_RETRY_BASE_SECONDS: value })).toMatchObject({
        policy: { baseSeconds: 5 },
        invalid: [],
      });
    for (const value of ["soon", "0", "-1", "1.5", "3601"]) {
      const { policy, invalid } = policyOf({ QUEUE_RETRY_BASE_SECONDS: value });
      expect(policy.baseSeconds).toBe(5);
      expect(invalid).toEqual([expect.stringMatching(/^QUEUE_RETRY_BASE_SECONDS /)]);
    }
  });

  it("defaults to a 26-hour horizon inside the 96-hour retention", () => {
    expect(policyOf({})).toEqual({
      policy: { ...DEFAULT_RETRY_POLICY, horizonSeconds: 26 * 3600, retentionSeconds: 96 * 3600 },
      invalid: [],
    });
  });

  it("refuses a horizon that would outlast the declared retention as a conflict, not a per-batch error, and cuts the schedule to it", () => {
    const { policy, invalid, conflict } = policyOf({ QUEUE_RETENTION_HOURS: "24" });
    expect(policy.horizonSeconds).toBe(23 * 3600);
    expect(invalid).toEqual([]);
    expect(conflict).toMatch(
      /^QUEUE_RETRY_HORIZON_HOURS \(26\) must end 1 hour before QUEUE_RETENTION_HOURS \(24\) .*: set it to 23 or less$/,
    );
    expect(policyOf({ QUEUE_RETENTION_HOURS: "24", QUEUE_RETRY_HORIZON_HOURS: "22" })).toMatchObject({
      policy: { horizonSeconds: 22 * 3600, retentionSeconds: 24 * 3600 },
      invalid: [],
    });
  });

  it("refuses a retention Queues does not offer", () => {
    const { policy, invalid } = policyOf({ QUEUE_RETENTION_HOURS: "400" });
    expect(policy.retentionSeconds).toBe(96 * 3600);
    expect(invalid).toEqual(["QUEUE_RETENTION_HOURS must be at most 336 (14 days)"]);
  });
});

describe("settling a message", () => {
  // The jitter's draw: 0 gives the schedule's longest delays, the ones the docs' table shows.
  beforeEach(() => vi.spyOn(Math, "random").mockReturnValue(0));
  afterEach(() => vi.restoreAllMocks());

  it("acks a delivered message", async () => {
    const result = await settleOne("ok-1", 1, { ok: true });
    expect(result.explicitAcks).toEqual(["ok-1"]);
    expect(result.retryMessages).toEqual([]);
  });

  it("retries a retryable failure with a delay that grows with the attempts", async () => {
    const first = await settleOne("retry-1", 1, { ok: false, retryable: true, reason: "segment answered 500" });
    const third = await settleOne("retry-3", 3, { ok: false, retryable: true, reason: "segment answered 500" });
    expect(first.retryMessages).toEqual([{ msgId: "retry-1", delaySeconds: 5 }]);
    expect(third.retryMessages).toEqual([{ msgId: "retry-3", delaySeconds: 20 }]);
    expect([...first.explicitAcks, ...third.explicitAcks]).toEqual([]);
    expect(await getDeadLetter(ledger(), "retry-1")).toBeUndefined();
  });

  it("honours Retry-After from a 429", async () => {
    const result = await settleOne("retry-after", 1, { ok: false, retryable: true, reason: "429", retryAfter: 30 });
    expect(result.retryMessages).toEqual([{ msgId: "retry-after", delaySeconds: 30 }]);
  });

  it("dead-letters a permanent failure with its reason, then acks it", async () => {
    const result = await settleOne("perm-1", 1, { ok: false, retryable: false, reason: "vero answered 400: bad id" });
    expect(result.explicitAcks).toEqual(["perm-1"]);
    expect(await getDeadLetter(ledger(), "perm-1")).toMatchObject({
      id: "perm-1",
      source: "vero",
      body: { kind: "vero", n: "perm-1" },
      reason: "vero answered 400: bad id",
      permanent: true,
      attempts: 1,
    });
  });

  it("dead-letters a retryable failure on its last attempt instead of dropping it", async () => {
    const result = await settleOne("last-1", MAX_RETRIES + 1, {
      ok: false,
      retryable: true,
      reason: "vero answered 503",
    });
    expect(result.explicitAcks).toEqual(["last-1"]);
    expect(await getDeadLetter(ledger(), "last-1")).toMatchObject({
      permanent: false,
      reason: `retries exhausted after ${MAX_RETRIES + 1} attempts: vero answered 503`,
    });
  });

  it("keeps retrying a message 25 hours old, and dead-letters it once it is past the 26-hour horizon", async () => {
    const young = await settleOne(
      "day-old",
      30,
      { ok: false, retryable: true, reason: "vero answered 503" },
      {
        enqueuedHoursAgo: 25,
      },
    );
    expect(young.retryMessages).toEqual([{ msgId: "day-old", delaySeconds: 3600 }]);
    const old = await settleOne(
      "too-old",
      30,
      { ok: false, retryable: true, reason: "vero answered 503" },
      {
        enqueuedHoursAgo: 26.01,
      },
    );
    expect(old.explicitAcks).toEqual(["too-old"]);
    expect(await getDeadLetter(ledger(), "too-old")).toMatchObject({
      permanent: false,
      reason: expect.stringMatching(/^retries exhausted after 30 attempts over 26 h 00 min: vero answered 503$/),
    });
  });

  it("retries rather than acks when the dead letter cannot be stored (no LEDGER bound)", async () => {
    const result = await settleOne(
      "no-ledger",
      1,
      { ok: false, retryable: false, reason: "bad" },
      { withoutStore: true },
    );
    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages).toEqual([{ msgId: "no-ledger", delaySeconds: 5 }]);
  });
  it("retries rather than acks when the ledger refuses the write", async () => {
    const batch = createMessageBatch("vero-segment-bridge-vero", [
      { id: "write-fails", timestamp: new Date(), attempts: 1, body: { kind: "vero" } },
    ]);
    const ctx = createExecutionContext();
    const [message] = batch.messages;
    if (!message) throw new Error("no message");
    const settlement = new Settlement("vero");
    expect(settlement.settle(message, { ok: false, retryable: false, reason: "bad" })).toBe("dead_lettered");
    // A statement D1 itself refuses (no such table) fails the whole batch() it rides in, as an outage would.
    await settlement.flush(ledger(), [ledger().prepare("INSERT INTO no_such_table VALUES (1)")]);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual([]);
    expect(result.retryMessages.map((retried) => retried.msgId)).toEqual(["write-fails"]);
    expect(await getDeadLetter(ledger(), "write-fails")).toBeUndefined();
  });
});

describe("the dead-letter queue consumer", () => {
  it("stores every message it receives and acks it", async () => {
    const batch = createMessageBatch("vero-segment-bridge-segment-dlq", [
      { id: "dlq-1", timestamp: new Date(), attempts: 1, body: { kind: "segment", n: 1 } },
      { id: "dlq-2", timestamp: new Date(), attempts: 1, body: { kind: "segment", n: 2 } },
    ]);
    const ctx = createExecutionContext();
    await consumeDeadLetterQueue(batch, "segment", ledger());
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(["dlq-1", "dlq-2"]);
    expect(await getDeadLetter(ledger(), "dlq-2")).toMatchObject({
      source: "segment",
      body: { kind: "segment", n: 2 },
      reason: "reached the segment dead-letter queue: delivery attempts exhausted",
    });
  });

  it("keeps a message for the queue's whole retention while the store is down, logging every failed attempt", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const fate = await runBatch(
      "vero-segment-bridge-vero-dlq",
      [
        { id: "dlq-first", body: { kind: "vero", n: 1 } },
        { id: "dlq-late", body: { kind: "vero", n: 2 }, attempts: 60 },
      ],
      { ...baseEnv, LEDGER: undefined },
    );
    expect(fate.acked).toEqual([]);
    const delays = fate.retried;
    // Every one of the 100 retries waits at least the retention over 100, so together they outlast it.
    const spread = Math.ceil(DEFAULT_RETRY_POLICY.retentionSeconds / DEFAULT_RETRY_POLICY.maxRetries);
    expect(delays).toEqual({ "dlq-first": spread, "dlq-late": 3600 });
    // What the consumer asks for over all of Queues' retries outlasts the retention, on Paid's 96 h and Free's 24 h.
    for (const retentionSeconds of [DEFAULT_RETRY_POLICY.retentionSeconds, 24 * 3_600]) {
      const policy = { ...DEFAULT_RETRY_POLICY, retentionSeconds };
      let total = 0;
      for (let attempts = 1; attempts <= policy.maxRetries; attempts++) total += keepDelaySeconds(policy, attempts);
      expect(total, `retention ${retentionSeconds} s`).toBeGreaterThanOrEqual(retentionSeconds);
    }
    const logged = errors.mock.calls.map(([line]) => JSON.parse(String(line)) as { level: string; msg: string });
    expect(logged.filter((line) => line.msg === "could not store a dead letter, will retry")).toHaveLength(2);
    errors.mockRestore();
  });
});
