import { type DeadLetterSource, storeDeadLetter } from "./dead-letters.ts";
import { describeError, log } from "./log.ts";

/**
 * What the queue consumers share: the queues' names, the retry policy, and
 * the one place where a message's fate (ack, retry, dead letter) is decided.
 * Kept in step with wrangler.toml by test/node/wrangler-config.test.ts.
 */
export const QUEUE_NAMES = {
  segment: "vero-segment-bridge-segment",
  vero: "vero-segment-bridge-vero",
  segmentDeadLetters: "vero-segment-bridge-segment-dlq",
  veroDeadLetters: "vero-segment-bridge-vero-dlq",
} as const;

/** wrangler.toml's `max_retries`: a message is delivered at most this many times plus one. */
export const MAX_RETRIES = 24;

const BASE_DELAY_SECONDS = 5;
const MAX_DELAY_SECONDS = 300;

/**
 * Exponential backoff by `msg.attempts` (1 on first delivery): 5 s, 10 s, 20 s,
 * ... capped at 5 minutes, so 24 retries span about 1 h 40 min of outage.
 * A Retry-After from the upstream lengthens the wait, never shortens it.
 */
export function backoffSeconds(attempts: number, retryAfter?: number): number {
  const exponential = Math.min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** Math.max(0, attempts - 1));
  return Math.min(MAX_DELAY_SECONDS, Math.max(exponential, Math.ceil(retryAfter ?? 0)));
}

/** How one message's delivery ended. */
export type Outcome =
  | { ok: true }
  | { ok: false; retryable: true; reason: string; retryAfter?: number }
  | { ok: false; retryable: false; reason: string };

/**
 * Acts on one message's outcome, explicitly:
 * - delivered: ack;
 * - permanent failure: stored as a dead letter with its reason, then ack;
 * - retryable failure: retry with backoff, until the last attempt, which is
 *   stored as a dead letter instead.
 * When the dead letter cannot be stored, the message is retried: it is never
 * acked without being delivered or kept.
 */
export async function settle(
  message: Message<unknown>,
  outcome: Outcome,
  context: { source: DeadLetterSource; deadLetters: KVNamespace | undefined },
): Promise<void> {
  if (outcome.ok) {
    message.ack();
    return;
  }
  const lastAttempt = message.attempts > MAX_RETRIES;
  if (outcome.retryable && !lastAttempt) {
    const delaySeconds = backoffSeconds(message.attempts, outcome.retryAfter);
    log("warn", "delivery failed, will retry", {
      queue: context.source,
      id: message.id,
      attempts: message.attempts,
      delaySeconds,
      reason: outcome.reason,
    });
    message.retry({ delaySeconds });
    return;
  }
  const reason = outcome.retryable
    ? `retries exhausted after ${message.attempts} attempts: ${outcome.reason}`
    : outcome.reason;
  try {
    if (!context.deadLetters) throw new Error("the DEAD_LETTERS KV namespace is not bound");
    await storeDeadLetter(context.deadLetters, {
      id: message.id,
      source: context.source,
      body: message.body,
      reason,
      permanent: !outcome.retryable,
      attempts: message.attempts,
      failedAt: new Date().toISOString(),
    });
  } catch (error) {
    log("error", "could not store a dead letter, will retry", {
      queue: context.source,
      id: message.id,
      error: describeError(error),
    });
    message.retry({ delaySeconds: backoffSeconds(message.attempts) });
    return;
  }
  log("error", "delivery failed for good, dead-lettered", {
    queue: context.source,
    id: message.id,
    attempts: message.attempts,
    permanent: !outcome.retryable,
    reason,
  });
  message.ack();
}

/**
 * The dead-letter queues' consumer: what reaches them ran out of retries
 * without the main consumer recording it (a crash, a timeout of the whole
 * invocation). Each message is stored where an operator can see it.
 */
export async function consumeDeadLetterQueue(
  batch: MessageBatch<unknown>,
  source: DeadLetterSource,
  deadLetters: KVNamespace | undefined,
): Promise<void> {
  for (const message of batch.messages) {
    await settle(
      message,
      { ok: false, retryable: false, reason: `reached the ${source} dead-letter queue: delivery attempts exhausted` },
      { source, deadLetters },
    );
  }
}
