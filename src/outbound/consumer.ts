/**
 * The Vero queue's consumer: it delivers nothing itself. It groups its
 * batch by user, puts each user's jobs in order (by the time the route
 * received them) and hands them to the user's mailbox in one call, all
 * users in parallel. A message is acked once its mailbox has committed it,
 * and retried (by the schedule) when its mailbox could not take it. Order,
 * retries and exactly-once are the mailbox's (src/delivery/mailbox.ts).
 */

import { Counters } from "../delivery/ledger.ts";
import { handToMailboxes, mailboxConfigFor, recordedBefore, usersOf } from "../delivery/mailboxes.ts";
import { retryPolicyFor, Settlement } from "../delivery/settlement.ts";
import type { Env } from "../shared/env.ts";
import { describeError, log } from "../shared/log.ts";
import { describeIssues } from "../shared/zod.ts";
import { jobOrder, type VeroJob, veroJobSchema } from "./job.ts";

interface Pending {
  queued: Message<unknown>;
  job: VeroJob;
}

export async function consumeVeroBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const settlement = new Settlement("vero", retryPolicyFor(env));
  const pending: Pending[] = [];
  let malformed = 0;
  for (const queued of batch.messages) {
    const parsed = veroJobSchema.safeParse(queued.body);
    if (parsed.success) {
      pending.push({ queued, job: parsed.data });
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

  const tally = { accepted: 0, skipped: 0, retried: 0, d1Statements: 0, doRequests: 0 };
  const retryAll = (reason: string) => {
    for (const { queued } of pending) settlement.settle(queued, { ok: false, retryable: true, reason });
    tally.retried += pending.length;
  };
  const ready = mailboxConfigFor(env);
  if (pending.length > 0 && !ready.ok) {
    log("error", "vero consumer cannot hand jobs to mailboxes", { queue: batch.queue, reason: ready.reason });
    retryAll(ready.reason);
  } else if (pending.length > 0 && ready.ok) {
    let recorded = new Map<string, string[]>();
    let ledgerDown: string | undefined;
    try {
      recorded = await recordedBefore(
        env,
        pending.map(({ job }) => job),
      );
      if (pending.some(({ job }) => job.v === 1)) tally.d1Statements++;
    } catch (error) {
      ledgerDown = `the previous ledger could not be read: ${describeError(error)}`;
    }
    if (ledgerDown) {
      // Sending blind could repeat calls the previous ledger holds: the batch waits for it.
      log("error", "vero consumer cannot check the previous ledger", { reason: ledgerDown });
      retryAll(ledgerDown);
    } else {
      const handed = await handToMailboxes(env, ready.config, pending, ({ job }) => ({
        job,
        recorded: recorded.get(job.messageId),
      }));
      tally.doRequests += handed.length;
      for (const group of handed) {
        if (group.ok) {
          tally.accepted += group.result.accepted;
          tally.skipped += group.result.skipped;
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
  }

  const counters = new Counters();
  if (malformed > 0) counters.add("outbound", "(malformed)", "dead_lettered", malformed);
  const statement = env.LEDGER && counters.statement(env.LEDGER);
  const rounds = await settlement.flush(env.LEDGER, [statement]);
  if (rounds > 0) tally.d1Statements += (statement ? 1 : 0) + malformed;
  log(tally.retried + malformed === 0 ? "info" : "warn", "vero batch", {
    queue: batch.queue,
    messages: batch.messages.length,
    users: usersOf(pending.map(({ job }) => job)),
    ...tally,
    malformed,
  });
}
