/**
 * What the alerts read from and write to the ledger (D1): the snapshot the
 * conditions are computed from, each condition's state, and the log of
 * alerts sent (migrations/0003_alerts.sql).
 */

import { RATE_WINDOW_MS, readLatency, readRecentOutcomes } from "../../delivery/counters.ts";
import { summarise } from "../../delivery/latency.ts";
import { stalledSummary } from "../../delivery/stalled-mailboxes.ts";
import { isMissingTable } from "../../shared/bindings.ts";
import type { AlertSettings } from "../../shared/settings.ts";
import { type Condition, type ConditionKey, type Counted, conditionsOf, type Snapshot } from "./conditions.ts";
import type { AlertKind, ConditionState } from "./transitions.ts";

const TOP_REASONS = 3;
/** Reasons are grouped by their start: the rest often carries an id that differs per letter. */
const REASON_CHARS = 120;

interface StateRow {
  condition: ConditionKey;
  active: number;
  since: string;
  last_sent_at: string | null;
  mark: string | null;
}

export async function readStates(db: D1Database): Promise<Map<ConditionKey, ConditionState>> {
  const { results } = await db
    .prepare("SELECT condition, active, since, last_sent_at, mark FROM alert_state")
    .all<StateRow>();
  return new Map(
    results.map((row) => [
      row.condition,
      {
        condition: row.condition,
        active: row.active === 1,
        since: row.since,
        lastSentAt: row.last_sent_at ?? undefined,
        mark: row.mark ?? undefined,
      },
    ]),
  );
}

export function writeStateStatement(db: D1Database, state: ConditionState, now: Date): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO alert_state (condition, active, since, last_sent_at, mark, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
       ON CONFLICT (condition) DO UPDATE SET active = excluded.active, since = excluded.since,
         last_sent_at = excluded.last_sent_at, mark = excluded.mark, updated_at = excluded.updated_at`,
    )
    .bind(
      state.condition,
      state.active ? 1 : 0,
      state.since,
      state.lastSentAt ?? null,
      state.mark ?? null,
      now.toISOString(),
    );
}

export interface SentAlert {
  sentAt: string;
  condition: ConditionKey;
  kind: AlertKind;
  summary: string;
  status: number | null;
  delivered: boolean;
}

export function logSentStatement(db: D1Database, alert: SentAlert): D1PreparedStatement {
  return db
    .prepare(
      "INSERT INTO alerts_sent (sent_at, condition, kind, summary, status, delivered) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(alert.sentAt, alert.condition, alert.kind, alert.summary, alert.status, alert.delivered ? 1 : 0);
}

/** The log keeps what the ledger keeps of its counters. */
export function pruneSentStatement(db: D1Database, before: Date): D1PreparedStatement {
  return db.prepare("DELETE FROM alerts_sent WHERE sent_at < ?1").bind(before.toISOString());
}

export async function recentAlerts(db: D1Database, limit = 10): Promise<SentAlert[]> {
  const { results } = await db
    .prepare(
      "SELECT sent_at, condition, kind, summary, status, delivered FROM alerts_sent ORDER BY sent_at DESC, id DESC LIMIT ?1",
    )
    .bind(limit)
    .all<{
      sent_at: string;
      condition: ConditionKey;
      kind: AlertKind;
      summary: string;
      status: number | null;
      delivered: number;
    }>();
  return results.map((row) => ({
    sentAt: row.sent_at,
    condition: row.condition,
    kind: row.kind,
    summary: row.summary,
    status: row.status,
    delivered: row.delivered === 1,
  }));
}

const counted = (rows: { value: string; count: number }[]): Counted[] =>
  rows.map((row) => ({ value: row.value, count: row.count }));

async function readDeadLetters(db: D1Database, mark: string | undefined): Promise<Snapshot["deadLetters"]> {
  const after = mark ?? "";
  const [totals, sources, reasons] = await db.batch<Record<string, unknown>>([
    db
      .prepare(
        `SELECT count(*) AS total, count(*) FILTER (WHERE failed_at > ?1) AS fresh,
           min(failed_at) FILTER (WHERE failed_at > ?1) AS oldest,
           max(failed_at) FILTER (WHERE failed_at > ?1) AS newest FROM dead_letters`,
      )
      .bind(after),
    db
      .prepare(
        "SELECT source AS value, count(*) AS count FROM dead_letters WHERE failed_at > ?1 GROUP BY source ORDER BY count DESC",
      )
      .bind(after),
    db
      .prepare(
        `SELECT substr(reason, 1, ?2) AS value, count(*) AS count FROM dead_letters WHERE failed_at > ?1
         GROUP BY 1 ORDER BY count DESC, value LIMIT ?3`,
      )
      .bind(after, REASON_CHARS, TOP_REASONS),
  ]);
  const row = (totals?.results[0] ?? {}) as {
    total?: number;
    fresh?: number;
    oldest?: string | null;
    newest?: string | null;
  };
  return {
    total: row.total ?? 0,
    fresh: row.fresh ?? 0,
    oldest: row.oldest ?? undefined,
    newest: row.newest ?? undefined,
    sources: counted((sources?.results ?? []) as { value: string; count: number }[]),
    reasons: counted((reasons?.results ?? []) as { value: string; count: number }[]),
  };
}

/**
 * The mailboxes whose oldest job waits longer than the threshold. The table
 * comes with the per-user mailboxes' migration: before it, none can stall;
 * any other failure is the ledger's, and propagates.
 */
async function readStalled(db: D1Database, before: Date): Promise<Snapshot["stalled"]> {
  try {
    const [summary, reasons] = await db.batch<Record<string, unknown>>([
      stalledSummary(db, before),
      db
        .prepare(
          `SELECT substr(reason, 1, ?2) AS value, count(*) AS count FROM stalled_mailboxes WHERE oldest_at < ?1
           GROUP BY 1 ORDER BY count DESC, value LIMIT ?3`,
        )
        .bind(before.toISOString(), REASON_CHARS, TOP_REASONS),
    ]);
    const row = (summary?.results[0] ?? {}) as { count?: number; oldest?: string | null };
    return {
      count: row.count ?? 0,
      oldestAt: row.oldest ?? undefined,
      reasons: counted((reasons?.results ?? []) as { value: string; count: number }[]),
    };
  } catch (error) {
    if (isMissingTable(error)) return { count: 0, reasons: [] };
    throw error;
  }
}

/** Everything the conditions are computed from; throws when the ledger cannot be read. */
export async function readSnapshot(
  db: D1Database,
  options: { deadLetterMark?: string; stalledMinutes: number; now: Date },
): Promise<Snapshot> {
  const windowStart = new Date(options.now.getTime() - RATE_WINDOW_MS);
  const [deadLetters, outcomes, stalled, latency] = await Promise.all([
    readDeadLetters(db, options.deadLetterMark),
    readRecentOutcomes(db, windowStart),
    readStalled(db, new Date(options.now.getTime() - options.stalledMinutes * 60_000)),
    readLatency(db, { since: windowStart }),
  ]);
  return {
    deadLetters,
    outcomes,
    stalled,
    latency: { inbound: summarise(latency.inbound), outbound: summarise(latency.outbound) },
  };
}

/** Each condition's state and the conditions that hold now: what the cron and the console's panel both judge by. */
export async function readConditions(
  db: D1Database,
  settings: AlertSettings,
  now: Date,
): Promise<{ states: Map<ConditionKey, ConditionState>; conditions: Condition[] }> {
  const states = await readStates(db);
  const snapshot = await readSnapshot(db, {
    deadLetterMark: states.get("dead-letters")?.mark,
    stalledMinutes: settings.stalledMinutes,
    now,
  });
  return { states, conditions: conditionsOf(snapshot, settings) };
}
