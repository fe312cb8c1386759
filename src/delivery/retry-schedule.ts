/**
 * When a failed queue message is tried again, and when it stops being
 * retried and becomes a dead letter. Pure (no Workers types, no clock, no
 * randomness of its own) so that the docs' table is printed from the same
 * function the consumers call (dev/retry-table.ts).
 *
 * A message is dead-lettered by the time since it was first enqueued (the
 * horizon), not by its attempt count: a `Retry-After` or a jittered delay
 * changes how many attempts fit, not how long delivery is tried. The count
 * still ends it when Queues' `max_retries` is reached.
 */
import { backoffSeconds, JITTER, type RetryPolicy } from "../shared/retry-policy.ts";

export {
  backoffSeconds,
  DEFAULT_RETRY_POLICY,
  JITTER,
  maxHorizonSeconds,
  RETENTION_MARGIN_SECONDS,
  RETRY_DEFAULTS,
  type RetryPolicy,
} from "../shared/retry-policy.ts";

/** The largest `delaySeconds` Queues takes on `retry()`; the lower of the figures Cloudflare has published (12 h). */
export const QUEUE_MAX_DELAY_SECONDS = 43_200;
/** Queues' `max_retries` may be at most 100. */
export const QUEUE_MAX_RETRIES_LIMIT = 100;

export interface FailedAttempt {
  /** `message.attempts`: 1 on the first delivery. */
  attempts: number;
  /** Seconds since the message was first enqueued. */
  elapsedSeconds: number;
  /** What the upstream asked for, in seconds. */
  retryAfter?: number;
  /** In [0, 1): the jitter's draw; 0 gives the longest delays (the docs' table). */
  random: number;
}

export type NextStep = { retry: true; delaySeconds: number } | { retry: false; reason: string };

/**
 * Retry after a delay, or stop. The delay is the jittered backoff,
 * lengthened to a Retry-After (up to Queues' maximum delay), and shortened
 * so that the last retry lands on the horizon rather than past it. A
 * Retry-After that ends past the horizon stops at once: a try at the
 * horizon would come before the upstream allowed it.
 */
export function nextStep(policy: RetryPolicy, failed: FailedAttempt): NextStep {
  if (failed.attempts > policy.maxRetries) {
    return { retry: false, reason: `retries exhausted after ${failed.attempts} attempts` };
  }
  const remaining = policy.horizonSeconds - failed.elapsedSeconds;
  if (remaining <= 0) {
    return {
      retry: false,
      reason: `retries exhausted after ${failed.attempts} attempts over ${formatDuration(failed.elapsedSeconds)}`,
    };
  }
  if (failed.retryAfter !== undefined && Math.ceil(failed.retryAfter) > remaining) {
    return {
      retry: false,
      reason: `the upstream asked to wait ${formatDuration(Math.ceil(failed.retryAfter))}, past the retry horizon (${formatDuration(remaining)} left) after ${failed.attempts} attempts`,
    };
  }
  const jittered = backoffSeconds(policy, failed.attempts) * (1 - JITTER * failed.random);
  const asked = Math.min(QUEUE_MAX_DELAY_SECONDS, Math.ceil(failed.retryAfter ?? 0));
  const delaySeconds = Math.ceil(Math.min(Math.max(Math.round(jittered), asked), remaining, QUEUE_MAX_DELAY_SECONDS));
  return { retry: true, delaySeconds };
}

/**
 * The retry delay of a message that must be kept for the whole retention
 * (a dead letter whose store is down): at least the retention spread over
 * the retries Queues allows, so the retries outlast the retention.
 */
export function keepDelaySeconds(policy: RetryPolicy, attempts: number): number {
  const spread = Math.ceil(policy.retentionSeconds / policy.maxRetries);
  return Math.min(QUEUE_MAX_DELAY_SECONDS, Math.max(backoffSeconds(policy, attempts), spread));
}

/** The schedule with the longest delays (no jitter, no Retry-After): one row per failed attempt. */
export function scheduleTable(
  policy: RetryPolicy,
): { attempt: number; delaySeconds: number; elapsedSeconds: number }[] {
  const rows: { attempt: number; delaySeconds: number; elapsedSeconds: number }[] = [];
  let elapsedSeconds = 0;
  for (let attempt = 1; ; attempt++) {
    const step = nextStep(policy, { attempts: attempt, elapsedSeconds, random: 0 });
    if (!step.retry) return rows;
    elapsedSeconds += step.delaySeconds;
    rows.push({ attempt, delaySeconds: step.delaySeconds, elapsedSeconds });
  }
}

/** The time the retries span with every delay as short as jitter makes it: what the attempt count allows. */
export function shortestSpanSeconds(policy: RetryPolicy): number {
  let elapsedSeconds = 0;
  for (let attempt = 1; ; attempt++) {
    const step = nextStep(policy, { attempts: attempt, elapsedSeconds, random: 1 - Number.EPSILON });
    if (!step.retry) return elapsedSeconds;
    elapsedSeconds += step.delaySeconds;
  }
}

export function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3_600);
  const m = Math.floor((seconds % 3_600) / 60);
  const s = Math.round(seconds % 60);
  if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m > 0) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${s} s`;
}
