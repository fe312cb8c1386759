/**
 * The alert cron: reads what holds, and posts one message per condition
 * that started, persisted past the repeat interval, or cleared. A condition
 * whose message was not delivered keeps its state, so the next run sends it.
 */
import { retentionDays } from "../../delivery/ledger.ts";
import type { Env } from "../../shared/env.ts";
import { describeError, log } from "../../shared/log.ts";
import { type AlertSettings, parseAlertSettings } from "../../shared/settings.ts";
import { type Condition, type ConditionKey, ledgerCondition } from "./conditions.ts";
import { bodyOf, plain } from "./format.ts";
import { readLedgerState, writeLedgerState } from "./ledger-alert.ts";
import { postAlert } from "./send.ts";
import { logSentStatement, pruneSentStatement, readConditions, writeStateStatement } from "./store.ts";
import { type AlertKind, type ConditionState, transition } from "./transitions.ts";

export { forgetLedgerState } from "./ledger-alert.ts";
export { ALERT_CRON } from "./schedule.ts";

export interface AlertRun {
  sent: { condition: ConditionKey; kind: AlertKind; delivered: boolean }[];
}

async function deliver(
  settings: AlertSettings & { webhook: { url: string; host: string } },
  key: ConditionKey,
  previous: ConditionState | undefined,
  current: Condition | undefined,
  now: Date,
) {
  const step = transition(key, previous, current, now, settings.repeatMinutes * 60_000);
  const kind = step?.send;
  if (!step || !kind) return undefined;
  // A "resolved" message says what cleared, in the words of RESOLVED.
  const condition = current ?? { key, summary: RESOLVED[key], details: [], link: "/admin#alerts", fresh: true };
  const result = await postAlert(settings.webhook, bodyOf({ kind, condition, at: now }, settings));
  log(result.delivered ? "info" : "error", "alert", {
    condition: key,
    kind,
    delivered: result.delivered,
    status: result.status ?? null,
    host: settings.webhook.host,
  });
  return { kind, next: step.next, result, condition };
}

/** What each condition says when it clears; the cron goes through the conditions in this order. */
const RESOLVED: Record<ConditionKey, string> = {
  ledger: "the ledger (D1) can be read again",
  "dead-letters": "no dead letters are left",
  "failure-rate:inbound": "inbound deliveries no longer fail above the threshold",
  "failure-rate:outbound": "outbound deliveries no longer fail above the threshold",
  "latency:inbound": "inbound latency is under the threshold",
  "latency:outbound": "outbound latency is under the threshold",
  "stalled-mailboxes": "no user's deliveries are stalled",
};

export async function runAlerts(env: Env, now = new Date()): Promise<AlertRun> {
  const settings = parseAlertSettings(env);
  for (const problem of settings.invalid) log("error", "alert setting ignored", { problem });
  const run: AlertRun = { sent: [] };
  const { webhook } = settings;
  if (!webhook || !env.LEDGER) return run;
  const withWebhook = { ...settings, webhook };
  const db = env.LEDGER;

  let states: Map<ConditionKey, ConditionState>;
  let conditions: Condition[];
  try {
    ({ states, conditions } = await readConditions(db, settings, now));
  } catch (error) {
    const previous = await readLedgerState(env);
    const sent = await deliver(withWebhook, "ledger", previous, ledgerCondition(describeError(error)), now);
    if (sent?.result.delivered) await writeLedgerState(env, sent.next);
    if (sent) run.sent.push({ condition: "ledger", kind: sent.kind, delivered: sent.result.delivered });
    return run;
  }
  states.set(
    "ledger",
    (await readLedgerState(env)) ?? { condition: "ledger", active: false, since: now.toISOString() },
  );

  const statements: D1PreparedStatement[] = [];
  for (const key of Object.keys(RESOLVED) as ConditionKey[]) {
    const current = conditions.find((condition) => condition.key === key);
    const sent = await deliver(withWebhook, key, states.get(key), current, now);
    if (!sent) continue;
    run.sent.push({ condition: key, kind: sent.kind, delivered: sent.result.delivered });
    statements.push(
      logSentStatement(db, {
        sentAt: now.toISOString(),
        condition: key,
        kind: sent.kind,
        summary: plain(sent.condition.summary),
        status: sent.result.status ?? null,
        delivered: sent.result.delivered,
      }),
    );
    if (!sent.result.delivered) continue;
    if (key === "ledger") await writeLedgerState(env, sent.next);
    else statements.push(writeStateStatement(db, sent.next, now));
  }
  statements.push(pruneSentStatement(db, new Date(now.getTime() - retentionDays(env) * 86_400_000)));
  await db.batch(statements);
  return run;
}
