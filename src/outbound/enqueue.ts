/**
 * Queue mode of the outbound routes: one job per deliverable event, sent to
 * the Vero queue in as few sendBatch calls as Cloudflare's limits allow.
 * The consumer does the delivering; the route only reports what it queued.
 */

import { jsonBytes } from "../shared/json.ts";
import { describeError, log } from "../shared/log.ts";
import { QUEUE_LIMITS, queuedBytes, sendBatchChunks } from "../shared/queue-limits.ts";
import type { VeroJob } from "./job.ts";
import { eventName, type RoutedEvent } from "./result.ts";

/** The job of a deliverable event, as the queue and the mailboxes take it. */
export function veroJobOf(job: RoutedEvent, at: number, seq: number): VeroJob {
  return { v: 2, kind: "vero", messageId: eventName(job.result), user: job.user, requests: job.requests, at, seq };
}

/**
 * Enqueues the jobs of `jobs` that have requests, in order, and records each
 * one's outcome in its result: `queued`, `invalid` (a job over a queue
 * message's 128,000 bytes), or `failed` and retryable when the queue refused
 * it. Chunks stay within sendBatch's limits counted as Queues counts them
 * (body and metadata), so no sendBatch is refused for its size. Should a
 * later chunk fail for another reason, the earlier ones stay queued and
 * say so; Segment's re-send of the request enqueues them again, and the
 * consumer's record of delivered calls keeps Vero from seeing them twice.
 */
export async function enqueueJobs(queue: Queue<unknown>, jobs: RoutedEvent[]): Promise<void> {
  const at = Date.now();
  let seq = 0;
  const sendable: { job: RoutedEvent; body: VeroJob; bytes: number }[] = [];
  for (const job of jobs) {
    if (job.requests.length === 0) continue;
    const body = veroJobOf(job, at, seq++);
    const bytes = queuedBytes(jsonBytes(body));
    if (bytes > QUEUE_LIMITS.messageBytes) {
      job.result.outcome = "invalid";
      job.result.error = `the event's Vero calls make a queue message of ${bytes} bytes, over Queues' ${QUEUE_LIMITS.messageBytes} bytes per message`;
      // Refused inside a 202 and kept nowhere: always logged, never left to the request line's sampling.
      log("warn", "outbound event refused: too large for a queue message", {
        messageId: body.messageId,
        bytes,
        limit: QUEUE_LIMITS.messageBytes,
      });
      continue;
    }
    sendable.push({ job, body, bytes });
  }
  const chunks = sendBatchChunks(sendable, ({ bytes }) => bytes);

  let failure: unknown;
  for (const chunk of chunks) {
    if (failure === undefined) {
      try {
        await queue.sendBatch(chunk.map(({ body }) => ({ body, contentType: "json" as const })));
        for (const { job } of chunk) job.result.outcome = "queued";
        continue;
      } catch (error) {
        failure = error;
      }
    }
    // Nothing holds these events: the request is answered 503 and Segment sends it again.
    for (const { job } of chunk) {
      job.result.outcome = "failed";
      job.result.retryable = true;
      job.result.error = `not queued: ${describeError(failure)}`;
    }
  }
}
