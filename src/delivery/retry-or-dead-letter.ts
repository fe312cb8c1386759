/**
 * The one retry-or-dead-letter decision, and its log lines, for every
 * delivery that failed: a queue message (settlement.ts) and a Vero user's
 * job in its mailbox. Each caller says where the delivery was (`where`: its
 * queue and its own ids) and how long it has been failing; the schedule and
 * the words are the same for both.
 */
import { log } from "../shared/log.ts";
import { nextStep, type RetryPolicy } from "./retry-schedule.ts";

/** A failed delivery attempt, as the delivering code saw it. */
export interface Failure {
  retryable: boolean;
  reason: string;
  retryAfter?: number;
}

/** Retry after `delaySeconds`, or let go as a dead letter with `reason`. */
export type Decision = { retry: true; delaySeconds: number } | { retry: false; permanent: boolean; reason: string };

/**
 * What the schedule makes of `failure` at attempt `attempts`, `elapsedSeconds`
 * into the horizon. A retry is logged here; a dead letter is logged by
 * `logDeadLettered` once it is kept, since keeping it may fail.
 */
export function decide(
  policy: RetryPolicy,
  failure: Failure,
  attempt: { attempts: number; elapsedSeconds: number },
  where: Record<string, unknown>,
): Decision {
  if (!failure.retryable) return { retry: false, permanent: true, reason: failure.reason };
  const step = nextStep(policy, { ...attempt, retryAfter: failure.retryAfter, random: Math.random() });
  if (!step.retry) return { retry: false, permanent: false, reason: `${step.reason}: ${failure.reason}` };
  log("warn", "delivery failed, will retry", {
    ...where,
    attempts: attempt.attempts,
    delaySeconds: step.delaySeconds,
    reason: failure.reason,
  });
  return step;
}

/** The line every dead letter gets once it is kept. */
export function logDeadLettered(
  where: Record<string, unknown>,
  letter: { attempts: number; permanent: boolean; reason: string },
): void {
  log("error", "delivery failed for good, dead-lettered", {
    ...where,
    attempts: letter.attempts,
    permanent: letter.permanent,
    reason: letter.reason,
  });
}
