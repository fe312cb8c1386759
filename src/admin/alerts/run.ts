/**
 * The alert cron: reads what holds, and posts one message per condition
 * that started, persisted past the repeat interval, or cleared. A condition
 * whose message was not delivered keeps its state, so the next run sends it.
 */
import { retentionDays } from "../../delivery/ledger.ts";
import type { Env } from "../../shared/env.ts";
import { describeError, log } from "../../shared/log.ts";
import { type AlertSettings, parseAlertSettings } from "../../shared/settings.ts";
import { type Condition, type ConditionKey, conditionsOf, ledgerCondition } from "./conditions.ts";
import { bodyOf, plain } from "./format.ts";
import { postAlert } from "./send.ts";
import { logSentStatement, pruneSentStatement, readSnapshot, readStates, writeStateStatement } from "./store.ts";
import { type ConditionState, transition } from "./transitions.ts";

/** Every 5 minutes: the failure rate's 15-minute window is seen three times. */
export const ALERT_CRON = "*/5 * * * *";

const KEYS: ConditionKey[] = [
  "ledger",
  "dead-letters",
  "failure-rate:inbound",
  "failure-rate:outbound",
  "stalled-mailboxes",
];

// The ledger's own condition cannot be remembered in the ledger: this isolate remembers it,
// so an outage that outlives the isolate may be told twice, never not at all.
let ledgerState: ConditionState | undefined;

/** For tests: forget the ledger condition's state. */
export function forgetLedgerState(): void {
  ledgerState = undefined;
}

export interface AlertRun {
  sent: { condition: ConditionKey; kind: string; delivered: boolean }[];
}

async function deliver(
  settings: AlertSettings & { webhook: { url: string; host: string } },
  key: ConditionKey,
  previous: ConditionState | undefined,
  current: Condition | undefined,
  now: Date,
) {
  const step = transition(key, previous, current, now, settings.repeatMinutes * 60_000);
  if (!step?.send) return undefined;
  // A "resolved" message describes what cleared: the condition as it was last known.
  const condition = current ?? { key, summary: resolvedSummary(key), details: [], link: "/admin#alerts", fresh: true };
  const result = await postAlert(settings.webhook, bodyOf({ kind: step.send, condition, at: now }, settings));
  log(result.delivered ? "info" : "error", "alert", {
    condition: key,
    kind: step.send,
    delivered: result.delivered,
    status: result.status ?? null,
    host: settings.webhook.host,
  });
  return { step, result, condition };
}

const RESOLVED: Record<ConditionKey, string> = {
  ledger: "the ledger (D1) can be read again",
  "dead-letters": "no dead letters are left",
  "failure-rate:inbound": "inbound deliveries no longer fail above the threshold",
  "failure-rate:outbound": "outbound deliveries no longer fail above the threshold",
  "stalled-mailboxes": "no user's deliveries are stalled",
};
const resolvedSummary = (key: ConditionKey) => RESOLVED[key];

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
    states = await readStates(db);
    const snapshot = await readSnapshot(db, {
      deadLetterMark: states.get("dead-letters")?.mark,
      stalledMinutes: settings.stalledMinutes,
      now,
    });
    conditions = conditionsOf(snapshot, settings);
  } catch (error) {
    const sent = await deliver(withWebhook, "ledger", ledgerState, ledgerCondition(describeError(error)), now);
    if (sent?.result.delivered) ledgerState = sent.step.next;
    if (sent) run.sent.push({ condition: "ledger", kind: sent.step.send ?? "", delivered: sent.result.delivered });
    return run;
  }
  states.set("ledger", ledgerState ?? { condition: "ledger", active: false, since: now.toISOString() });

  const statements: D1PreparedStatement[] = [];
  for (const key of KEYS) {
    const current = conditions.find((condition) => condition.key === key);
    const sent = await deliver(withWebhook, key, states.get(key), current, now);
    if (!sent?.step.send) continue;
    run.sent.push({ condition: key, kind: sent.step.send, delivered: sent.result.delivered });
    statements.push(
      logSentStatement(db, {
        sentAt: now.toISOString(),
        condition: key,
        kind: sent.step.send,
        summary: plain(sent.condition.summary),
        status: sent.result.status ?? null,
        delivered: sent.result.delivered,
      }),
    );
    if (!sent.result.delivered) continue;
    if (key === "ledger") ledgerState = sent.step.next;
    else statements.push(writeStateStatement(db, sent.step.next, now));
  }
  statements.push(pruneSentStatement(db, new Date(now.getTime() - retentionDays(env) * 86_400_000)));
  await db.batch(statements);
  return run;
}
