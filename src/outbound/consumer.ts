/**
 * The Vero queue's consumer. Jobs are grouped by user; groups run side by
 * side (a few at once, so Vero is not flooded), and the jobs of one user run
 * one after another in batch order, each job's calls in order (identify
 * before its tags). Every message is settled explicitly.
 *
 * Once a job of a user fails retryably, that user's later jobs in the batch
 * are not attempted but retried behind it, with at least its delay, so they
 * do not overtake it. A permanent failure is dead-lettered and the user's
 * later jobs go on: they do not depend on a call Vero refuses.
 *
 * With the ledger (LEDGER bound), the calls Vero accepted are recorded, so
 * a job retried or re-driven after some of its calls succeeded resumes
 * after them, and a re-sent event is not sent again. Without it, a job that
 * failed after some of its calls succeeded is acked, and what is left of it
 * continues as a new job (same messageId, `step` = calls done): a retry of
 * the whole job would repeat its events/track, which Vero would record twice.
 */

import type { RetryPolicy } from "../delivery/retry-schedule.ts";
import { type Fate, type Outcome, retryPolicyFor, retryStep, Settlement } from "../delivery/settlement.ts";
import type { Env } from "../shared/env.ts";
import { describeError, log } from "../shared/log.ts";
import { describeUnready, settingsFor, type VeroTarget } from "../shared/settings.ts";
import { describeIssues } from "../shared/zod.ts";
import { CallLedger, callName } from "./calls.ts";
import { jobOrder, type VeroJob, veroJobSchema } from "./job.ts";
import type { VeroRequest } from "./map.ts";

/** How many users' jobs run at once. */
export const VERO_CONCURRENCY = 5;

type Settle = (message: Message<unknown>, outcome: Outcome) => Fate;

interface Pending {
  queued: Message<unknown>;
  job: VeroJob;
}

interface Tally {
  delivered: number;
  continued: number;
  retried: number;
  heldBack: number;
  deadLettered: number;
  /** Calls not made again: the ledger (or an earlier job of the batch) holds them. */
  skipped: number;
}

async function runGroup(
  jobs: Pending[],
  target: VeroTarget,
  env: Env,
  policy: RetryPolicy,
  settleOne: Settle,
  tally: Tally,
  ledger: CallLedger,
): Promise<void> {
  const count = (request: VeroRequest | undefined, fate: Fate) => {
    if (request && fate !== "acked") ledger.counters.add("outbound", callName(request), fate);
  };
  // Set once a job of this user is to be retried: the user's later jobs wait behind it.
  let blockedBy: { messageId: string; delaySeconds: number } | undefined;
  for (const { queued, job } of jobs) {
    if (blockedBy) {
      tally.heldBack++;
      settleOne(queued, {
        ok: false,
        retryable: true,
        reason: `not attempted: an earlier job of the same user (${blockedBy.messageId}) is retried first`,
        retryAfter: blockedBy.delaySeconds,
      });
      continue;
    }

    const { done, skipped, error, failed } = await ledger.run(target, job.messageId, job.requests, job.step);
    tally.skipped += skipped;
    if (!error) {
      tally.delivered++;
      settleOne(queued, { ok: true });
      continue;
    }

    const step = retryStep(queued, policy, error.retryAfter);
    const delaySeconds = step.retry ? step.delaySeconds : 0;
    // With the ledger, the retry (or re-drive) of the whole job resumes after its recorded calls.
    if (done > 0 && !ledger.dedup) {
      const continuation: VeroJob = { ...job, requests: job.requests.slice(done), step: (job.step ?? 0) + done };
      const enqueued = await enqueueContinuation(env, continuation, error.retryable ? delaySeconds : 0);
      if (enqueued === true) {
        tally.continued++;
        settleOne(queued, { ok: true });
        if (error.retryable) blockedBy = { messageId: job.messageId, delaySeconds };
        continue;
      }
      // Without the continuation the whole job is retried, its first calls included (see docs/durability.md).
      tally.retried++;
      const fate = settleOne(queued, {
        ok: false,
        retryable: true,
        reason: `${error.message}; the rest could not be enqueued (${enqueued}), so the whole job is retried`,
        retryAfter: error.retryAfter,
      });
      count(failed, fate);
      blockedBy = { messageId: job.messageId, delaySeconds };
      continue;
    }

    if (error.retryable) {
      tally.retried++;
      blockedBy = { messageId: job.messageId, delaySeconds };
      count(
        failed,
        settleOne(queued, { ok: false, retryable: true, reason: error.message, retryAfter: error.retryAfter }),
      );
    } else {
      tally.deadLettered++;
      count(failed, settleOne(queued, { ok: false, retryable: false, reason: error.message }));
    }
  }
}

/** True, or why the continuation could not be enqueued. */
async function enqueueContinuation(env: Env, job: VeroJob, delaySeconds: number): Promise<true | string> {
  if (!env.VERO_QUEUE) return "VERO_QUEUE is not bound";
  try {
    await env.VERO_QUEUE.send(job, { contentType: "json", delaySeconds });
    return true;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Runs `tasks` with at most `limit` in flight. */
async function pool(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < tasks.length) {
      const task = tasks[next++];
      if (task) await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, lane));
}

export async function consumeVeroBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const policy = retryPolicyFor(env);
  const settlement = new Settlement("vero", policy);
  const settleOne: Settle = (message, outcome) => settlement.settle(message, outcome);

  const groups = new Map<string, Pending[]>();
  let malformed = 0;
  for (const queued of batch.messages) {
    const parsed = veroJobSchema.safeParse(queued.body);
    if (!parsed.success) {
      malformed++;
      settleOne(queued, {
        ok: false,
        retryable: false,
        reason: `malformed Vero queue message: ${describeIssues(parsed.error, { whole: "body", most: 3 })}`,
      });
      continue;
    }
    const group = groups.get(parsed.data.user) ?? [];
    group.push({ queued, job: parsed.data });
    groups.set(parsed.data.user, group);
  }
  // A retried job comes back behind newer ones; its enqueue time and sequence put it back in front.
  for (const group of groups.values()) group.sort(jobOrder);

  const tally: Tally = { delivered: 0, continued: 0, retried: 0, heldBack: 0, deadLettered: 0, skipped: 0 };
  const ledger = await openLedger(env, groups, settleOne);
  if (ledger && groups.size > 0) {
    const outbound = settingsFor(env).consumers.vero;
    if (outbound.ready) {
      await pool(
        [...groups.values()].map(
          (jobs) => () => runGroup(jobs, outbound.settings, env, policy, settleOne, tally, ledger),
        ),
        VERO_CONCURRENCY,
      );
    } else {
      const reason = describeUnready("the Vero consumer", outbound);
      log("error", "vero consumer cannot deliver", { queue: batch.queue, messages: batch.messages.length, reason });
      for (const group of groups.values())
        for (const { queued } of group) settleOne(queued, { ok: false, retryable: true, reason });
    }
  }
  if (malformed > 0) ledger?.counters.add("outbound", "(malformed)", "dead_lettered", malformed);
  const writes = await settlement.flush(env.LEDGER, ledger?.statements() ?? []);
  if (groups.size === 0 && malformed === 0) return;
  const clean = tally.retried + tally.heldBack + tally.deadLettered + malformed === 0;
  log(clean ? "info" : "warn", "vero batch", {
    queue: batch.queue,
    messages: batch.messages.length,
    users: groups.size,
    ...tally,
    malformed,
    ledgerQueries: (ledger?.queries ?? 0) + writes,
  });
}

/**
 * The batch's recorded calls, read in one query. When the ledger cannot be
 * read the batch is retried: sending blind could repeat what Vero already has.
 */
async function openLedger(
  env: Env,
  groups: Map<string, Pending[]>,
  settleOne: Settle,
): Promise<CallLedger | undefined> {
  const messageIds = [...groups.values()].flatMap((group) => group.map(({ job }) => job.messageId));
  try {
    return await CallLedger.open(env.LEDGER, messageIds);
  } catch (error) {
    const reason = `the ledger could not be read: ${describeError(error)}`;
    log("error", "vero consumer cannot check its ledger", { messages: messageIds.length, reason });
    for (const group of groups.values())
      for (const { queued } of group) settleOne(queued, { ok: false, retryable: true, reason });
    return undefined;
  }
}
