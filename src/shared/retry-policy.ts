/**
 * What the retry settings decide: the policy's shape, its defaults, and the
 * longest horizon a queue retention allows. Here rather than beside the
 * schedule (src/delivery/retry-schedule.ts) because the settings check them,
 * and settings import nothing above src/shared/.
 */
import { MAX_RETRIES } from "./queue-limits.ts";

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

/** The backoff before the retry that follows attempt `attempts`, before jitter and Retry-After. */
export function backoffSeconds(policy: Pick<RetryPolicy, "baseSeconds" | "capSeconds">, attempts: number): number {
  return Math.min(policy.capSeconds, policy.baseSeconds * 2 ** Math.max(0, attempts - 1));
}
