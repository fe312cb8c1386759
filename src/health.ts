import { failureRateCondition, stalledCondition } from "./admin/alerts/conditions.ts";
import { RATE_WINDOW_MS, readRecentOutcomes } from "./delivery/counters.ts";
import { stalledSummary } from "./delivery/stalled-mailboxes.ts";
import { isMissingTable, LEDGER_UNBOUND, LEDGER_UNMIGRATED, MAILBOX_UNBOUND } from "./shared/bindings.ts";
import type { Env } from "./shared/env.ts";
import { describeError } from "./shared/log.ts";
import { describeUnready, settingsFor } from "./shared/settings.ts";
import { VERSION } from "./shared/version.ts";

/** What `GET /health` answers, and what the console's status panel shows. */
export function healthOf(env: Env) {
  const settings = settingsFor(env);
  // Which settings to fix, by name only (never a value): e.g. a secret shorter than its minimum.
  const problems = (["inbound", "outbound", "admin"] as const).flatMap((name) => {
    const state = settings[name];
    return !state.ready && state.invalid.length > 0 ? [describeUnready(name, state)] : [];
  });
  return {
    status: "ok" as const,
    version: VERSION,
    inbound: settings.inbound.ready,
    outbound: settings.outbound.ready,
    // The queue consumers need only their own upstream's settings, so they can be ready while a route is closed.
    consumers: { segment: settings.consumers.segment.ready, vero: settings.consumers.vero.ready },
    ...consumersNotReady(settings.consumers),
    // Whether re-sent events are recognised: the mailboxes (MAILBOX) keep the record of calls Vero accepted.
    dedup: env.MAILBOX !== undefined,
    // SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: whether /segment takes an array signed over its first event alone.
    firstEventSignatures:
      settings.outbound.ready && settings.outbound.settings.acceptFirstEventSignature
        ? ("accepted (weaker)" as const)
        : ("refused" as const),
    ...(problems.length > 0 ? { problems } : {}),
    // Set only by the tools that start a local bridge (dev/bridge.ts), which check they reached their own.
    ...(settings.instance ? { instance: settings.instance } : {}),
  };
}

/** Why a consumer cannot deliver, setting names only: the same sentences its batches log. */
function consumersNotReady({ segment, vero }: ReturnType<typeof settingsFor>["consumers"]) {
  const reasons = [
    ...(segment.ready ? [] : [describeUnready("the Segment consumer", segment)]),
    ...(vero.ready ? [] : [describeUnready("the Vero consumer", vero)]),
  ];
  return reasons.length > 0 ? { consumersNotReady: reasons } : {};
}

export type Health = ReturnType<typeof healthOf>;

/** What `GET /health/ready` checks: each a reason when it fails. */
export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/**
 * Whether the bridge can do its job now: every direction and consumer
 * configured, the ledger bound and readable, neither direction failing
 * above the alert threshold over the last 15 minutes, and no user's
 * deliveries waiting longer than ALERT_STALLED_MINUTES. Reasons name settings
 * and counts, never their values.
 */
export async function readinessOf(env: Env, now = new Date()): Promise<Readiness> {
  const settings = settingsFor(env);
  const reasons: string[] = [];
  const parts = [
    ["inbound", settings.inbound],
    ["outbound", settings.outbound],
    ["the Segment consumer", settings.consumers.segment],
    ["the Vero consumer", settings.consumers.vero],
  ] as const;
  for (const [name, state] of parts) if (!state.ready) reasons.push(describeUnready(name, state));
  // The outbound routes and the Vero consumer hand every job to a mailbox: without the binding they answer 503.
  if (settings.outbound.ready && !env.MAILBOX) reasons.push(MAILBOX_UNBOUND);
  if (!env.LEDGER) {
    reasons.push(LEDGER_UNBOUND);
    return { ready: false, reasons };
  }
  try {
    const thresholds = settings.alerts;
    const outcomes = await readRecentOutcomes(env.LEDGER, new Date(now.getTime() - RATE_WINDOW_MS));
    const stalled = await stalledSummary(env.LEDGER, new Date(now.getTime() - thresholds.stalledMinutes * 60_000))
      .first<{ count: number; oldest: string | null }>()
      .catch((error: unknown) => {
        // Before migrations/0002 no user can be reported stalled.
        if (isMissingTable(error)) return null;
        throw error;
      });
    for (const direction of ["inbound", "outbound"] as const) {
      const condition = failureRateCondition(direction, outcomes[direction], thresholds);
      if (condition) reasons.push(condition.summary);
    }
    // A user stalled, capped or with a backlog older than ALERT_STALLED_MINUTES, as the alert counts them.
    const waiting = { count: stalled?.count ?? 0, oldestAt: stalled?.oldest ?? undefined, reasons: [] };
    const condition = stalledCondition(waiting, thresholds.stalledMinutes);
    if (condition) reasons.push(condition.summary);
  } catch (error) {
    reasons.push(
      isMissingTable(error)
        ? LEDGER_UNMIGRATED
        : `the ledger (D1 binding LEDGER) cannot be read: ${describeError(error)}`,
    );
  }
  return { ready: reasons.length === 0, reasons };
}

/** How long a readiness answer is reused in an isolate: anyone may call `/health/ready`, and each check reads D1. */
export const READINESS_CACHE_MS = 30_000;

let cachedReadiness: { at: number; readiness: Promise<Readiness> } | undefined;

/**
 * `readinessOf`, checked at most once per READINESS_CACHE_MS per isolate;
 * callers meanwhile share the answer (and a check under way), so a flood of
 * unauthenticated calls costs D1 nothing. Per isolate rather than Cloudflare's
 * Cache API, which does nothing on workers.dev hosts.
 */
export function cachedReadinessOf(env: Env, now = Date.now()): Promise<Readiness> {
  if (cachedReadiness && now >= cachedReadiness.at && now - cachedReadiness.at < READINESS_CACHE_MS)
    return cachedReadiness.readiness;
  const readiness = readinessOf(env, new Date(now));
  cachedReadiness = { at: now, readiness };
  return readiness;
}

/** For tests: the next readiness call checks again. */
export function forgetReadiness(): void {
  cachedReadiness = undefined;
}
