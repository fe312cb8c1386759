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
import { MAX_RETRIES } from "../shared/queue-names.ts";

/** The largest `delaySeconds` Queues takes on `retry()`; the lower of the figures Cloudflare has published (12 h). */
export const QUEUE_MAX_DELAY_SECONDS = 43_200;
/** Queues' `max_retries` may be at most 100. */
export const QUEUE_MAX_RETRIES_LIMIT = 100;
/** A retry horizon must end this long before the queue's retention: room for a backlog and the dead-letter store. */
export const RETENTION_MARGIN_SECONDS = 3_600;
/** Each backoff delay is shortened by up to this fraction, so that a backlog does not come back all at once. */
export const JITTER = 0.2;

export const RETRY_DEFAULTS = {
  /** QUEUE_RETRY_BASE_SECONDS: the first delay, doubled per attempt. */
  baseSeconds: 5,
  /** No backoff delay is longer (a Retry-After may be). */
  capSeconds: 3_600,
  /** QUEUE_RETRY_HORIZON_HOURS: how long delivery is tried before a message becomes a dead letter. */
  horizonHours: 26,
  /** QUEUE_RETENTION_HOURS: the message retention of the queues (Workers Paid's default, 4 days). */
  retentionHours: 96,
} as const;

export interface RetryPolicy {
  baseSeconds: number;
  capSeconds: number;
  horizonSeconds: number;
  /** The queues' message retention: nothing may wait in a queue longer. */
  retentionSeconds: number;
  /** wrangler.toml's `max_retries`. */
  maxRetries: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  baseSeconds: RETRY_DEFAULTS.baseSeconds,
  capSeconds: RETRY_DEFAULTS.capSeconds,
  horizonSeconds: RETRY_DEFAULTS.horizonHours * 3_600,
  retentionSeconds: RETRY_DEFAULTS.retentionHours * 3_600,
  maxRetries: MAX_RETRIES,
};

/**
 * The longest horizon: it ends an hour before the retention, and within
 * what `max_retries` attempts span when jitter makes every delay shortest
 * (about 72 hours with the hour cap), so that time, not the count, ends it.
 */
export function maxHorizonSeconds(retentionSeconds: number, policy: RetryPolicy = DEFAULT_RETRY_POLICY): number {
  let reachable = 0;
  for (let attempts = 1; attempts <= policy.maxRetries; attempts++) {
    reachable += Math.round(backoffSeconds(policy, attempts) * (1 - JITTER));
  }
  return Math.min(retentionSeconds - RETENTION_MARGIN_SECONDS, reachable);
}

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

/** The backoff before the retry that follows attempt `attempts`, before jitter and Retry-After. */
export function backoffSeconds(policy: Pick<RetryPolicy, "baseSeconds" | "capSeconds">, attempts: number): number {
  return Math.min(policy.capSeconds, policy.baseSeconds * 2 ** Math.max(0, attempts - 1));
}

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
