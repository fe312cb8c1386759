import { ALERT_CRON, runAlerts } from "./admin/alerts/run.ts";
import { app } from "./app.ts";
import { pruneCountersStatements } from "./delivery/counters.ts";
import { consumeDeadLetterQueue, retryPolicyFor } from "./delivery/settlement.ts";
import { consumeSegmentBatch } from "./inbound/consumer.ts";
import { consumeVeroBatch } from "./outbound/consumer.ts";
import { pruneCallsStatement } from "./outbound/vero-calls.ts";
import type { Env } from "./shared/env.ts";
import { configureLogs, log } from "./shared/log.ts";
import { queueRole } from "./shared/queue-names.ts";
import { settingsFor } from "./shared/settings.ts";

/** Each queue in wrangler.toml has its consumer here, chosen by what the queue's name says it carries. */
async function queue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  configureLogs({ sampleRate: settingsFor(env).logSampleRate });
  switch (queueRole(batch.queue)) {
    case "segment":
      return consumeSegmentBatch(batch, env);
    case "vero":
      return consumeVeroBatch(batch, env);
    case "segmentDeadLetters":
      return consumeDeadLetterQueue(batch, "segment", env.LEDGER, retryPolicyFor(env));
    case "veroDeadLetters":
      return consumeDeadLetterQueue(batch, "vero", env.LEDGER, retryPolicyFor(env));
    default:
      // A queue wired to this Worker by mistake: its messages are kept (retried) for whoever fixes the wiring.
      log("error", "no consumer for this queue; retrying its batch", {
        queue: batch.queue,
        messages: batch.messages.length,
      });
      batch.retryAll();
  }
}

/** The Cron Triggers in wrangler.toml: the alerts' check (src/admin/alerts/), and daily, the ledger forgets recorded calls and counters past their retention. */
async function scheduled(controller: ScheduledController, env: Env): Promise<void> {
  if (controller.cron === ALERT_CRON) {
    await runAlerts(env, new Date(controller.scheduledTime));
    return;
  }
  if (!env.LEDGER) return;
  const days = settingsFor(env).retentionDays;
  const pruned = await pruneLedger(env.LEDGER, days);
  log("info", "ledger pruned", { retentionDays: days, ...pruned });
}

/**
 * Deletes counters and latencies older than the retention, and a bounded
 * chunk of the calls recorded before the mailboxes (`vero_calls`), in one batch. Dead letters
 * stay until an operator acts.
 */
async function pruneLedger(
  db: D1Database,
  days: number,
  now = new Date(),
): Promise<{ calls: number; counters: number; latency: number; before: string }> {
  const before = new Date(now.getTime() - days * 86_400_000).toISOString();
  const [calls, counters, latency] = await db.batch([
    pruneCallsStatement(db, before),
    ...pruneCountersStatements(db, before),
  ]);
  return {
    calls: calls?.meta.changes ?? 0,
    counters: counters?.meta.changes ?? 0,
    latency: latency?.meta.changes ?? 0,
    before,
  };
}

// The Durable Object classes wrangler.toml binds (MAILBOX, COUNTERS, LEDGER_ALERT) are exported by the main module.
export { LedgerAlert } from "./admin/alerts/ledger-alert.ts";
export { CounterShard } from "./delivery/counter-shard.ts";
export { Mailbox } from "./outbound/mailbox.ts";

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext) {
    configureLogs({ sampleRate: settingsFor(env).logSampleRate });
    return app.fetch(request, env, ctx);
  },
  queue,
  scheduled,
} satisfies ExportedHandler<Env>;
