/**
 * The Vero queue's consumer: it delivers nothing itself. It groups its
 * batch by user, puts each user's jobs in order (by the time the route
 * received them) and hands them to the user's mailbox in one call, all
 * users in parallel. A message is acked once its mailbox has committed it,
 * and retried (by the schedule) when its mailbox could not take it. Order,
 * retries and exactly-once are the mailbox's (src/outbound/mailbox.ts).
 */

import { Counters } from "../delivery/counters.ts";
import { retryPolicyFor, Settlement } from "../delivery/settlement.ts";
import type { Env } from "../shared/env.ts";
import { describeError, log, logSampled } from "../shared/log.ts";
import { describeIssues } from "../shared/zod.ts";
import { jobOrder, type VeroJob, veroJobSchema } from "./job.ts";
import { QUEUE_SETTLE_MS } from "./mailbox.ts";
import { acceptedTotals, type Handed, handJobsToMailboxes, mailboxConfigFor, usersOf } from "./mailboxes.ts";

interface Pending {
  queued: Message<unknown>;
  job: VeroJob;
}

interface Tally {
  accepted: number;
  skipped: number;
  doRowsRead: number;
  doRowsWritten: number;
  alarmsSet: number;
  retried: number;
  d1Statements: number;
  doRequests: number;
}

/** Hands the jobs to their users' mailboxes and settles each message by its mailbox's answer. */
async function handOn(
  env: Env,
  queue: string,
  pending: Pending[],
  settlement: Settlement,
  tally: Tally,
): Promise<void> {
  const retryAll = (reason: string) => {
    for (const { queued } of pending) settlement.settle(queued, { ok: false, retryable: true, reason });
    tally.retried += pending.length;
  };
  const ready = mailboxConfigFor(env);
  if (!ready.ok) {
    log("error", "vero consumer cannot hand jobs to mailboxes", { queue, reason: ready.reason });
    return retryAll(ready.reason);
  }
  let handed: Handed<Pending>[];
  try {
    // Other invocations may be handing the same users' older jobs over right now: each job waits to let them sort in.
    const result = await handJobsToMailboxes(env, ready, pending, ({ job }) => job, QUEUE_SETTLE_MS);
    handed = result.handed;
    tally.d1Statements += result.d1Statements;
  } catch (error) {
    // The previous ledger could not be read (a 503 that says so): the batch waits for it.
    const reason = error instanceof Error ? error.message : describeError(error);
    log("error", "vero consumer cannot check the previous ledger", { reason });
    return retryAll(reason);
  }
  tally.doRequests += handed.length;
  const totals = acceptedTotals(handed);
  tally.accepted += totals.accepted;
  tally.skipped += totals.skipped;
  tally.doRowsRead += totals.doRowsRead;
  tally.doRowsWritten += totals.doRowsWritten;
  tally.alarmsSet += totals.alarmsSet;
  for (const group of handed) {
    if (group.ok) {
      for (const { queued } of group.items) settlement.settle(queued, { ok: true });
      continue;
    }
    tally.retried += group.items.length;
    for (const { queued } of group.items)
      settlement.settle(queued, {
        ok: false,
        retryable: true,
        reason: `the user's mailbox did not take the job: ${group.error}`,
      });
  }
}

/** A Vero job a later version of the bridge queued (its `v` above the ones veroJobSchema reads). */
const isNewerJob = (body: unknown): boolean => {
  const { kind, v } = (body ?? {}) as { kind?: unknown; v?: unknown };
  return kind === "vero" && typeof v === "number" && Number.isInteger(v) && v > 2;
};

export async function consumeVeroBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const settlement = new Settlement("vero", retryPolicyFor(env));
  const pending: Pending[] = [];
  let malformed = 0;
  let newer = 0;
  for (const queued of batch.messages) {
    const parsed = veroJobSchema.safeParse(queued.body);
    if (parsed.success) {
      pending.push({ queued, job: parsed.data });
      continue;
    }
    if (isNewerJob(queued.body)) {
      // Queued by a newer version during a deploy: the newer consumer will read it, so it waits rather than dying.
      settlement.settle(queued, {
        ok: false,
        retryable: true,
        reason: `a Vero job of a newer version (v: ${(queued.body as { v: number }).v}) than this consumer reads`,
      });
      newer++;
      continue;
    }
    malformed++;
    settlement.settle(queued, {
      ok: false,
      retryable: false,
      reason: `malformed Vero queue message: ${describeIssues(parsed.error, { whole: "body", most: 3 })}`,
    });
  }
  // Queues keeps no order; the route's receive time (and place in its request) puts each user's jobs back in it.
  pending.sort(jobOrder);

  const tally: Tally = {
    accepted: 0,
    skipped: 0,
    doRowsRead: 0,
    doRowsWritten: 0,
    alarmsSet: 0,
    retried: newer,
    d1Statements: 0,
    doRequests: 0,
  };
  if (pending.length > 0) await handOn(env, batch.queue, pending, settlement, tally);

  const counters = new Counters();
  if (malformed > 0) counters.add("outbound", "(malformed)", "dead_lettered", malformed);
  const statement = env.LEDGER && counters.statement(env.LEDGER);
  const rounds = await settlement.flush(env.LEDGER, [statement]);
  if (rounds > 0) tally.d1Statements += (statement ? 1 : 0) + malformed;
  const line = {
    queue: batch.queue,
    messages: batch.messages.length,
    users: usersOf(pending.map(({ job }) => job)),
    ...tally,
    malformed,
  };
  // A clean batch is a success line, sampled by its messageIds.
  if (tally.retried + malformed === 0)
    logSampled(
      pending.map(({ job }) => job.messageId),
      "vero batch",
      line,
    );
  else log("warn", "vero batch", line);
}
