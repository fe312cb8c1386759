import { ALERT_CRON, runAlerts } from "./admin/alerts/run.ts";
import { app } from "./app.ts";
import { pruneLedger, retentionDays } from "./delivery/ledger.ts";
import { consumeDeadLetterQueue, retryPolicyFor } from "./delivery/settlement.ts";
import { consumeSegmentBatch } from "./inbound/consumer.ts";
import { consumeVeroBatch } from "./outbound/consumer.ts";
import type { Env } from "./shared/env.ts";
import { configureLogs, log } from "./shared/log.ts";
import { queueRole } from "./shared/queue-names.ts";
import { logSampleRate } from "./shared/settings.ts";

/** Each queue in wrangler.toml has its consumer here, chosen by what the queue's name says it carries. */
async function queue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  configureLogs({ sampleRate: logSampleRate(env) });
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
  const days = retentionDays(env);
  const pruned = await pruneLedger(env.LEDGER, days);
  log("info", "ledger pruned", { retentionDays: days, ...pruned });
}

// The Durable Object classes wrangler.toml binds (MAILBOX, COUNTERS, LEDGER_ALERT) are exported by the main module.
export { LedgerAlert } from "./admin/alerts/ledger-alert.ts";
export { CounterShard } from "./delivery/counter-shard.ts";
export { Mailbox } from "./outbound/mailbox.ts";

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext) {
    configureLogs({ sampleRate: logSampleRate(env) });
    return app.fetch(request, env, ctx);
  },
  queue,
  scheduled,
} satisfies ExportedHandler<Env>;
