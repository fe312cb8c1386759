/**
 * The conditions an operator is told about, as pure functions of what the
 * ledger said (a `Snapshot`). Each names itself, says what holds in words,
 * and links to the console view that shows it.
 */
import type { LatencySummary } from "../../delivery/latency.ts";
import type { Direction, OutcomeCounts } from "../../delivery/ledger.ts";

export type ConditionKey =
  | "dead-letters"
  | "failure-rate:inbound"
  | "failure-rate:outbound"
  | "latency:inbound"
  | "latency:outbound"
  | "stalled-mailboxes"
  | "ledger";

export interface Counted {
  value: string;
  count: number;
}

export interface Snapshot {
  deadLetters: {
    /** Letters in the ledger now. */
    total: number;
    /** Letters that failed after the newest one already alerted on. */
    fresh: number;
    /** The oldest and newest `failed_at` among the fresh ones. */
    oldest?: string;
    newest?: string;
    sources: Counted[];
    reasons: Counted[];
  };
  /** Each direction's outcomes over the last 15 minutes. */
  outcomes: OutcomeCounts;
  /** Mailboxes whose oldest job is older than the threshold. */
  stalled: { count: number; oldestAt?: string; reasons: Counted[] };
  /** Each direction's delivery latency over the last 15 minutes. */
  latency: Record<Direction, LatencySummary>;
}

export interface Thresholds {
  failureRate: number;
  minAttempts: number;
  stalledMinutes: number;
  latencySeconds: number;
}

export interface Condition {
  key: ConditionKey;
  /** One line saying what holds. */
  summary: string;
  details: string[];
  /** Path and query of the console view that shows it. */
  link: string;
  /** Whether there is something new to say (dead letters: new ones); every other condition always has. */
  fresh: boolean;
  /** Dead letters: the newest failure this condition covers, remembered so the next alert counts only later ones. */
  mark?: string;
}

const DIRECTIONS: Record<Direction, string> = {
  inbound: "Inbound (Vero → Segment)",
  outbound: "Outbound (Segment → Vero)",
};

const plural = (count: number, one: string, many = `${one}s`) => `${count} ${count === 1 ? one : many}`;
const listed = (items: Counted[]) => items.map((item) => `${item.value} (${item.count})`).join(", ");

/**
 * The console's list filtered to the new letters (since the oldest of them). One parameter only:
 * an `&` would need escaping for Slack, which Discord would then show as it is.
 */
export function deadLettersLink(snapshot: Snapshot["deadLetters"]): string {
  const since = snapshot.fresh > 0 && snapshot.oldest ? `?since=${encodeURIComponent(snapshot.oldest)}` : "";
  return `/admin${since}#dead-letters`;
}

export function deadLetterCondition(snapshot: Snapshot["deadLetters"]): Condition | undefined {
  if (snapshot.total === 0) return undefined;
  const details = [`${plural(snapshot.total, "dead letter")} in all wait for an operator`];
  if (snapshot.sources.length > 0) details.push(`queues: ${listed(snapshot.sources)}`);
  if (snapshot.reasons.length > 0) details.push(`top reasons: ${listed(snapshot.reasons)}`);
  return {
    key: "dead-letters",
    summary:
      snapshot.fresh > 0
        ? `${plural(snapshot.fresh, "new dead letter")} since the last alert`
        : `${plural(snapshot.total, "dead letter")} wait for an operator`,
    details,
    link: deadLettersLink(snapshot),
    fresh: snapshot.fresh > 0,
    mark: snapshot.newest,
  };
}

export function failureRate(counts: OutcomeCounts[Direction]): { failed: number; attempts: number } {
  const failed = (counts.retried ?? 0) + (counts.dead_lettered ?? 0);
  return { failed, attempts: failed + (counts.delivered ?? 0) };
}

export function failureRateCondition(
  direction: Direction,
  counts: OutcomeCounts[Direction],
  thresholds: Pick<Thresholds, "failureRate" | "minAttempts">,
): Condition | undefined {
  const { failed, attempts } = failureRate(counts);
  if (attempts < thresholds.minAttempts || failed / attempts <= thresholds.failureRate) return undefined;
  const percent = Math.round((failed / attempts) * 100);
  return {
    key: `failure-rate:${direction}`,
    summary: `${DIRECTIONS[direction]}: ${percent}% of deliveries failed over the last 15 minutes (${failed} of ${attempts})`,
    details: [
      `threshold ${Math.round(thresholds.failureRate * 100)}% (ALERT_FAILURE_RATE), at least ${thresholds.minAttempts} attempts`,
      `retried ${counts.retried ?? 0}, dead-lettered ${counts.dead_lettered ?? 0}, delivered ${counts.delivered ?? 0}`,
    ],
    link: "/admin#flow",
    fresh: true,
  };
}

/** Seconds, to the tenth below a minute, else whole: what an operator reads at a glance. */
export function formatMs(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 100) / 10} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 6_000) / 10} min`;
  return `${Math.round(ms / 360_000) / 10} h`;
}

/** p95 over the window above ALERT_LATENCY_SECONDS: deliveries are slow (a slow upstream, or a backlog). */
export function latencyCondition(
  direction: Direction,
  latency: LatencySummary,
  latencySeconds: number,
): Condition | undefined {
  if (latency.p95Ms === null || latency.p95Ms <= latencySeconds * 1000) return undefined;
  return {
    key: `latency:${direction}`,
    summary: `${DIRECTIONS[direction]}: 95% of deliveries over the last 15 minutes took up to ${formatMs(latency.p95Ms)}`,
    details: [
      `threshold ${latencySeconds} s (ALERT_LATENCY_SECONDS)`,
      `p50 ${formatMs(latency.p50Ms ?? 0)}, p99 ${formatMs(latency.p99Ms ?? 0)}, ${plural(latency.count, "delivery", "deliveries")}`,
    ],
    link: "/admin#latency",
    fresh: true,
  };
}

export function stalledCondition(stalled: Snapshot["stalled"], stalledMinutes: number): Condition | undefined {
  if (stalled.count === 0) return undefined;
  const details = [`oldest pending since ${stalled.oldestAt ?? "unknown"}`];
  if (stalled.reasons.length > 0) details.push(`top reasons: ${listed(stalled.reasons)}`);
  return {
    key: "stalled-mailboxes",
    summary: `${plural(stalled.count, "user's deliveries", "users' deliveries")} stalled for over ${stalledMinutes} minutes`,
    details,
    link: "/admin#alerts",
    fresh: true,
  };
}

export function ledgerCondition(error: string): Condition {
  return {
    key: "ledger",
    summary: "The ledger (D1 binding LEDGER) cannot be read",
    details: [error],
    link: "/admin#status",
    fresh: true,
  };
}

/** Every condition that holds in `snapshot`. */
export function conditionsOf(snapshot: Snapshot, thresholds: Thresholds): Condition[] {
  return [
    deadLetterCondition(snapshot.deadLetters),
    failureRateCondition("inbound", snapshot.outcomes.inbound, thresholds),
    failureRateCondition("outbound", snapshot.outcomes.outbound, thresholds),
    latencyCondition("inbound", snapshot.latency.inbound, thresholds.latencySeconds),
    latencyCondition("outbound", snapshot.latency.outbound, thresholds.latencySeconds),
    stalledCondition(snapshot.stalled, thresholds.stalledMinutes),
  ].filter((condition) => condition !== undefined);
}
