/**
 * A Vero queue binding that records what a route sends, for tests that count
 * messages and sendBatch calls. Miniflare's queue takes any batch; this
 * double refuses one over Queues' production limits, so a route that would
 * be refused in production fails here too.
 */
import { jsonBytes } from "../../../src/shared/json.ts";
import { QUEUE_LIMITS, queuedBytes } from "../../../src/shared/queue-limits.ts";

export function recordingQueue() {
  const sent: unknown[] = [];
  let sendBatchCalls = 0;
  const queue = {
    send: async (body: unknown) => {
      sent.push(body);
    },
    sendBatch: async (messages: Iterable<{ body: unknown }>) => {
      const batch = [...messages];
      const bytes = batch.reduce((total, { body }) => total + queuedBytes(jsonBytes(body)), 0);
      if (batch.length > QUEUE_LIMITS.batchMessages || bytes > QUEUE_LIMITS.batchBytes)
        throw new Error(`sendBatch of ${batch.length} messages and ${bytes} bytes is over Queues' limits`);
      sendBatchCalls++;
      for (const { body } of batch) sent.push(body);
    },
  } as unknown as Queue<unknown>;
  return { queue, sent, sendBatchCalls: () => sendBatchCalls };
}
