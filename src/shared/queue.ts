import type * as z from "zod/mini";
import { type DeadLetterSource, storeDeadLetter } from "./dead-letters.ts";
import type { Env } from "./env.ts";
import { describeError, log } from "./log.ts";
import {
  backoffSeconds,
  DEFAULT_RETRY_POLICY,
  keepDelaySeconds,
  type NextStep,
  nextStep,
  type RetryPolicy,
} from "./retry-schedule.ts";
import { settingsFor } from "./settings.ts";
import "./zod.ts";

/**
 * What the queue consumers share: the one place where a message's fate
 * (ack, retry, dead letter) is decided, by the retry schedule.
 */
export { MAX_RETRIES, QUEUE_NAMES } from "./queue-names.ts";

/**
 * What the schedule makes of a failed delivery of `message` now. The time
 * since the message was first enqueued is `message.timestamp`'s age: Queues
 * keeps it across retries (a re-driven dead letter is a new message, with a
 * new horizon).
 */
export function retryStep(message: Message<unknown>, policy: RetryPolicy, retryAfter?: number): NextStep {
  return nextStep(policy, {
    attempts: message.attempts,
    elapsedSeconds: Math.max(0, (Date.now() - message.timestamp.getTime()) / 1000),
    retryAfter,
    random: Math.random(),
  });
}

/**
 * The retry schedule from the settings. A consumer has no response to
 * carry a bad value, so each is logged as an error on every batch, and a
 * safe value applies (see parseRetryPolicy).
 */
export function retryPolicyFor(env: Env): RetryPolicy {
  const { policy, invalid } = settingsFor(env).retry;
  for (const problem of invalid) log("error", "queue retry setting is invalid", { problem });
  return policy;
}

/** Short enough for a log line and a dead letter's summary. */
export function describeIssues(error: z.core.$ZodError): string {
  const issues = error.issues.slice(0, 3).map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`);
  return `${issues.join("; ")}${error.issues.length > 3 ? `; and ${error.issues.length - 3} more` : ""}`;
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
  context: {
    source: DeadLetterSource;
    deadLetters: KVNamespace | undefined;
    policy?: RetryPolicy;
    /** A dead-letter queue's message: nothing stands behind it, so it is kept for the queue's whole retention. */
    keep?: boolean;
  },
): Promise<void> {
  const policy = context.policy ?? DEFAULT_RETRY_POLICY;
  if (outcome.ok) {
    message.ack();
    return;
  }
  let reason = outcome.reason;
  if (outcome.retryable) {
    const step = retryStep(message, policy, outcome.retryAfter);
    if (step.retry) {
      log("warn", "delivery failed, will retry", {
        queue: context.source,
        id: message.id,
        attempts: message.attempts,
        delaySeconds: step.delaySeconds,
        reason: outcome.reason,
      });
      message.retry({ delaySeconds: step.delaySeconds });
      return;
    }
    reason = `${step.reason}: ${outcome.reason}`;
  }
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
    const delaySeconds = context.keep
      ? keepDelaySeconds(policy, message.attempts)
      : backoffSeconds(policy, message.attempts);
    log("error", "could not store a dead letter, will retry", {
      queue: context.source,
      id: message.id,
      attempts: message.attempts,
      delaySeconds,
      error: describeError(error),
    });
    message.retry({ delaySeconds });
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
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): Promise<void> {
  for (const message of batch.messages) {
    await settle(
      message,
      { ok: false, retryable: false, reason: `reached the ${source} dead-letter queue: delivery attempts exhausted` },
      { source, deadLetters, policy, keep: true },
    );
  }
}
