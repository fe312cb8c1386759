import * as z from "zod/mini";
import { type DeadLetterSource, storeDeadLetter } from "./dead-letters.ts";
import type { Env } from "./env.ts";
import { describeError, log } from "./log.ts";
import { MAX_RETRIES } from "./queue-names.ts";
import "./zod.ts";

/**
 * What the queue consumers share: the retry policy, and the one place where
 * a message's fate (ack, retry, dead letter) is decided.
 */
export { MAX_RETRIES, QUEUE_NAMES } from "./queue-names.ts";

export const BASE_DELAY_SECONDS = 5;
const MAX_DELAY_SECONDS = 300;

/**
 * Exponential backoff by `msg.attempts` (1 on first delivery): 5 s, 10 s, 20 s,
 * ... capped at 5 minutes, so 24 retries span about 1 h 35 min of outage.
 * A Retry-After from the upstream lengthens the wait, never shortens it.
 * `baseSeconds` is QUEUE_RETRY_BASE_SECONDS; tests shrink it to run outages in seconds.
 */
export function backoffSeconds(attempts: number, retryAfter?: number, baseSeconds = BASE_DELAY_SECONDS): number {
  const exponential = Math.min(MAX_DELAY_SECONDS, baseSeconds * 2 ** Math.max(0, attempts - 1));
  return Math.min(MAX_DELAY_SECONDS, Math.max(exponential, Math.ceil(retryAfter ?? 0)));
}

const retryBaseSchema = z.pipe(z.coerce.number(), z.int().check(z.minimum(0), z.maximum(MAX_DELAY_SECONDS)));

/**
 * QUEUE_RETRY_BASE_SECONDS, validated. A consumer has no response to put a
 * 503 in, so an invalid value is logged and the default applies: a typo must
 * not stop delivery, nor turn backoff into a hot loop.
 */
export function retryBaseSeconds(env: Pick<Env, "QUEUE_RETRY_BASE_SECONDS">): number {
  const raw = env.QUEUE_RETRY_BASE_SECONDS;
  if (raw === undefined || String(raw).trim() === "") return BASE_DELAY_SECONDS;
  const parsed = retryBaseSchema.safeParse(String(raw).trim());
  if (parsed.success) return parsed.data;
  log("error", "QUEUE_RETRY_BASE_SECONDS is not a whole number of seconds from 0 to 300; using 5", {});
  return BASE_DELAY_SECONDS;
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
  context: { source: DeadLetterSource; deadLetters: KVNamespace | undefined; retryBaseSeconds?: number },
): Promise<void> {
  const base = context.retryBaseSeconds ?? BASE_DELAY_SECONDS;
  if (outcome.ok) {
    message.ack();
    return;
  }
  const lastAttempt = message.attempts > MAX_RETRIES;
  if (outcome.retryable && !lastAttempt) {
    const delaySeconds = backoffSeconds(message.attempts, outcome.retryAfter, base);
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
    message.retry({ delaySeconds: backoffSeconds(message.attempts, undefined, base) });
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
