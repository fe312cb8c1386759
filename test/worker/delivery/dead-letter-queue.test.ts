/** The dead-letter queues' consumer: one letter the ledger refuses must not fail its neighbours. */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { getDeadLetter } from "../../../src/delivery/dead-letters.ts";
import { consumeDeadLetterQueue } from "../../../src/delivery/settlement.ts";
import { baseEnv } from "../helpers/env.ts";

const ledger = () => baseEnv.LEDGER as D1Database;

afterEach(() => vi.restoreAllMocks());

describe("the dead-letter queue consumer with a poison letter", () => {
  it("stores and acks every neighbour of a letter the ledger cannot take, and retries only that one", async () => {
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: unknown) => void errors.push(String(line)));
    const tag = `poison-${Date.now()}`;
    // A BigInt travels in a v8-encoded queue message but has no JSON form: the letter's INSERT cannot be built.
    const messages = Array.from({ length: 9 }, (_, i) => ({
      id: `${tag}-${i}`,
      timestamp: new Date(),
      attempts: 1,
      body: i === 4 ? { kind: "vero", n: 4n } : { kind: "vero", n: i },
    }));
    const batch = createMessageBatch("vero-segment-bridge-vero-dlq", messages);
    const ctx = createExecutionContext();
    await consumeDeadLetterQueue(batch, "vero", ledger());
    const result = await getQueueResult(batch, ctx);
    const good = messages.filter((_, i) => i !== 4).map((message) => message.id);
    expect(result.explicitAcks.sort()).toEqual(good.sort());
    expect(result.retryMessages.map((retried) => retried.msgId)).toEqual([`${tag}-4`]);
    for (const id of good) expect(await getDeadLetter(ledger(), id)).toBeDefined();
    expect(await getDeadLetter(ledger(), `${tag}-4`)).toBeUndefined();
    const retried = errors.map((line) => JSON.parse(line)).filter((line) => line.id === `${tag}-4`);
    expect(retried).toEqual([expect.objectContaining({ msg: "could not store a dead letter, will retry" })]);
  });
});
