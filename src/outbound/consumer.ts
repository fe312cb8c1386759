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
 * A job that failed after some of its calls succeeded is acked, and what is
 * left of it continues as a new job (same messageId, `step` = calls done):
 * a retry of the whole job would repeat its events/track, which Vero would
 * record twice.
 */
import type { Env } from "../shared/env.ts";
import { DeliveryError } from "../shared/errors.ts";
import { log } from "../shared/log.ts";
import { backoffSeconds, type Outcome, retryBaseSeconds, settle } from "../shared/queue.ts";
import { describeUnready, type OutboundSettings, settingsFor } from "../shared/settings.ts";
import { describeIssues } from "../shared/zod.ts";
import { type VeroJob, veroJobSchema } from "./job.ts";
import type { VeroRequest } from "./map.ts";
import { sendToVero } from "./vero.ts";

/** How many users' jobs run at once. */
export const VERO_CONCURRENCY = 5;

type Settle = (message: Message<unknown>, outcome: Outcome) => Promise<void>;

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
}

/**
 * A delete that Vero answers 404 on a redelivery was most likely done by an
 * earlier attempt whose answer was lost (a timeout): the user is gone, which
 * is what was asked. On a first delivery a 404 is taken at its word.
 */
function alreadyDone(request: VeroRequest, error: DeliveryError, attempts: number): boolean {
  return request.path === "/users/delete" && error.status === 404 && attempts > 1;
}

/** Makes a job's calls one by one; says how many succeeded and, if one failed, why. */
async function runCalls(
  target: OutboundSettings,
  job: VeroJob,
  attempts: number,
): Promise<{ done: number; error?: DeliveryError }> {
  for (const [index, request] of job.requests.entries()) {
    try {
      await sendToVero(target, [request]);
    } catch (error) {
      // Anything but a DeliveryError is a bug: it escapes, and the runtime retries what is not settled yet.
      if (!(error instanceof DeliveryError)) throw error;
      if (alreadyDone(request, error, attempts)) continue;
      return { done: index, error };
    }
  }
  return { done: job.requests.length };
}

async function runGroup(
  jobs: Pending[],
  target: OutboundSettings,
  env: Env,
  base: number,
  settleOne: Settle,
  tally: Tally,
): Promise<void> {
  // Set once a job of this user is to be retried: the user's later jobs wait behind it.
  let blockedBy: { messageId: string; delaySeconds: number } | undefined;
  for (const { queued, job } of jobs) {
    if (blockedBy) {
      tally.heldBack++;
      await settleOne(queued, {
        ok: false,
        retryable: true,
        reason: `not attempted: an earlier job of the same user (${blockedBy.messageId}) is retried first`,
        retryAfter: blockedBy.delaySeconds,
      });
      continue;
    }

    const { done, error } = await runCalls(target, job, queued.attempts);
    if (!error) {
      tally.delivered++;
      await settleOne(queued, { ok: true });
      continue;
    }

    const delaySeconds = backoffSeconds(queued.attempts, error.retryAfter, base);
    if (done > 0) {
      const continuation: VeroJob = { ...job, requests: job.requests.slice(done), step: (job.step ?? 0) + done };
      const enqueued = await enqueueContinuation(env, continuation, error.retryable ? delaySeconds : 0);
      if (enqueued === true) {
        tally.continued++;
        await settleOne(queued, { ok: true });
        if (error.retryable) blockedBy = { messageId: job.messageId, delaySeconds };
        continue;
      }
      // Without the continuation the whole job is retried, its first calls included (see README).
      tally.retried++;
      await settleOne(queued, {
        ok: false,
        retryable: true,
        reason: `${error.message}; the rest could not be enqueued (${enqueued}), so the whole job is retried`,
        retryAfter: error.retryAfter,
      });
      blockedBy = { messageId: job.messageId, delaySeconds };
      continue;
    }

    if (error.retryable) {
      tally.retried++;
      blockedBy = { messageId: job.messageId, delaySeconds };
      await settleOne(queued, { ok: false, retryable: true, reason: error.message, retryAfter: error.retryAfter });
    } else {
      tally.deadLettered++;
      await settleOne(queued, { ok: false, retryable: false, reason: error.message });
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
  const base = retryBaseSeconds(env);
  const context = { source: "vero" as const, deadLetters: env.DEAD_LETTERS, retryBaseSeconds: base };
  const settleOne: Settle = (message, outcome) => settle(message, outcome, context);

  const groups = new Map<string, Pending[]>();
  let malformed = 0;
  for (const queued of batch.messages) {
    const parsed = veroJobSchema.safeParse(queued.body);
    if (!parsed.success) {
      malformed++;
      await settleOne(queued, {
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
  if (groups.size === 0) return;
  // A retried job comes back behind newer ones; the enqueue time puts it back in front (the sort is stable).
  const enqueuedAt = ({ queued, job }: Pending) => job.at ?? queued.timestamp.getTime();
  for (const group of groups.values()) group.sort((a, b) => enqueuedAt(a) - enqueuedAt(b));

  const outbound = settingsFor(env).outbound;
  if (!outbound.ready) {
    const reason = describeUnready("outbound", outbound);
    log("error", "vero consumer cannot deliver", { queue: batch.queue, messages: batch.messages.length, reason });
    for (const group of groups.values())
      for (const { queued } of group) await settleOne(queued, { ok: false, retryable: true, reason });
    return;
  }

  const tally: Tally = { delivered: 0, continued: 0, retried: 0, heldBack: 0, deadLettered: 0 };
  await pool(
    [...groups.values()].map((jobs) => () => runGroup(jobs, outbound.settings, env, base, settleOne, tally)),
    VERO_CONCURRENCY,
  );
  const clean = tally.retried + tally.heldBack + tally.deadLettered + malformed === 0;
  log(clean ? "info" : "warn", "vero batch", {
    queue: batch.queue,
    messages: batch.messages.length,
    users: groups.size,
    ...tally,
    malformed,
  });
}
