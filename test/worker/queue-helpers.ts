/** Runs the Worker's queue handler on a batch as the runtime would, and reports each message's fate. */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { vi } from "vitest";
import worker from "../../src/index.ts";
import type { Env } from "../../src/shared/env.ts";

export interface QueuedMessage {
  id: string;
  body: unknown;
  attempts?: number;
}

export interface BatchFate {
  acked: string[];
  /** Retried message ids with the delay asked for (getQueueResult does not report it, so `retry` is spied on). */
  retried: Record<string, number | undefined>;
}

export async function runBatch(queue: string, messages: QueuedMessage[], env: Env): Promise<BatchFate> {
  const batch = createMessageBatch(
    queue,
    messages.map(({ id, body, attempts = 1 }) => ({ id, body, attempts, timestamp: new Date() })),
  );
  const delays: Record<string, number | undefined> = {};
  for (const message of batch.messages) {
    const original = message.retry.bind(message);
    vi.spyOn(message, "retry").mockImplementation((options) => {
      delays[message.id] = options?.delaySeconds;
      original(options);
    });
  }
  const ctx = createExecutionContext();
  // The schedule's jitter drawn as 0: the longest delays, the ones the docs' table shows.
  const random = vi.spyOn(Math, "random").mockReturnValue(0);
  try {
    await worker.queue(batch, env);
  } finally {
    random.mockRestore();
  }
  const result = await getQueueResult(batch, ctx);
  const retried: Record<string, number | undefined> = {};
  for (const { msgId } of result.retryMessages) retried[msgId] = delays[msgId];
  return { acked: [...result.explicitAcks].sort(), retried };
}
