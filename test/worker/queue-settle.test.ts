import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { getDeadLetter } from "../../src/shared/dead-letters.ts";
import {
  backoffSeconds,
  consumeDeadLetterQueue,
  MAX_RETRIES,
  type Outcome,
  retryBaseSeconds,
  Settlement,
} from "../../src/shared/queue.ts";
import { baseEnv } from "./helpers.ts";

const ledger = () => baseEnv.LEDGER as D1Database;

/**
 * Settles one message with one outcome and returns what the runtime was
 * told. getQueueResult does not report retry delays, so `retry` is spied on
 * (and still called) to see the delay asked for.
 */
async function settleOne(id: string, attempts: number, outcome: Outcome, options: { withoutStore?: boolean } = {}) {
  const batch = createMessageBatch("vero-segment-bridge-vero", [
    { id, timestamp: new Date(), attempts, body: { kind: "vero", n: id } },
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

describe("backoff", () => {
  it("doubles from 5 s and stops at 5 minutes", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((attempts) => backoffSeconds(attempts))).toEqual([
      5, 10, 20, 40, 80, 160, 300, 300,
    ]);
  });

  it("starts from QUEUE_RETRY_BASE_SECONDS when set, and from 5 s when it is unset or invalid", () => {
    expect([1, 2, 3].map((attempts) => backoffSeconds(attempts, undefined, 1))).toEqual([1, 2, 4]);
    expect(backoffSeconds(4, undefined, 0)).toBe(0);
    expect(retryBaseSeconds({ QUEUE_RETRY_BASE_SECONDS: " 2 " })).toBe(2);
    expect(retryBaseSeconds({ QUEUE_RETRY_BASE_SECONDS: "0" })).toBe(0);
    for (const value of [undefined, "", "soon", "-1", "1.5", "301"]) {
      expect(retryBaseSeconds({ QUEUE_RETRY_BASE_SECONDS: value })).toBe(5);
    }
  });

  it("waits at least as long as Retry-After asks, within the cap", () => {
    expect(backoffSeconds(1, 42)).toBe(42);
    expect(backoffSeconds(5, 42)).toBe(80);
    expect(backoffSeconds(1, 3600)).toBe(300);
  });
});

describe("settling a message", () => {
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
});
