/**
 * The counters (D1 tables `counters` and `latency`): each direction's
 * outcomes per name and its delivery latencies, per 5-minute bucket, fine
 * enough for the alerts' 15-minute failure rate; reads sum them to hours.
 * Every batch of rows travels as one JSON parameter expanded by `json_each`,
 * so one statement serves a batch of any size within D1's 100 bound
 * parameters.
 */
import { isMissingTable } from "../shared/bindings.ts";
import { describeError, log } from "../shared/log.ts";
import { binOf, type Histogram, LATENCY, LATENCY_BOUNDS_MS } from "./latency.ts";

export type Direction = "inbound" | "outbound";
export type CounterOutcome = "delivered" | "retried" | "dead_lettered" | "refused" | "filtered";
/** What travels with the counts: an outcome, or a latency bin (`LATENCY`, named by the bin's lower bound). */
export type CountedOutcome = CounterOutcome | typeof LATENCY;
export interface CounterRow {
  /** The hour's start, ISO, e.g. "2026-11-28T15:00:00.000Z". */
  hour: string;
  direction: Direction;
  /** Inbound: the event name sent to Segment; outbound: the Vero call, e.g. "POST /events/track". */
  name: string;
  outcome: CounterOutcome;
  count: number;
}

/** The hour `date` falls in, as `readCounters` reports it. */
export function hourOf(date: Date): string {
  const hour = new Date(date);
  hour.setUTCMinutes(0, 0, 0);
  return hour.toISOString();
}

/** Counters are stored per 5 minutes, fine enough for the alerts' 15-minute failure rate; reads sum them to hours. */
export const BUCKET_MS = 5 * 60_000;

/** The 5-minute bucket `date` falls in, as stored in the column `bucket` (its start). */
export function bucketOf(date: Date): string {
  return new Date(Math.floor(date.getTime() / BUCKET_MS) * BUCKET_MS).toISOString();
}

/** Counts and latencies gathered in memory over a batch or request, written by one statement each. */
export class Counters {
  private readonly counts = new Map<string, number>();
  private readonly latencies = new Map<string, number>();

  add(direction: Direction, name: string, outcome: CountedOutcome, by = 1): void {
    if (by <= 0) return;
    if (outcome === LATENCY) {
      const key = JSON.stringify([direction, binOf(Number(name))]);
      this.latencies.set(key, (this.latencies.get(key) ?? 0) + by);
      return;
    }
    const key = JSON.stringify([direction, name, outcome]);
    this.counts.set(key, (this.counts.get(key) ?? 0) + by);
  }

  /** One event delivered `ms` after the bridge received it. */
  addLatency(direction: Direction, ms: number): void {
    this.add(direction, String(binOf(ms)), LATENCY);
  }

  merge(other: Counters): void {
    for (const [key, count] of other.counts) this.counts.set(key, (this.counts.get(key) ?? 0) + count);
    for (const [key, count] of other.latencies) this.latencies.set(key, (this.latencies.get(key) ?? 0) + count);
  }

  /** The upsert adding every count to its 5-minute bucket's row, or undefined when nothing was counted. */
  statement(db: D1Database, now = new Date()): D1PreparedStatement | undefined {
    if (this.counts.size === 0) return undefined;
    const rows = [...this.counts].map(([key, count]) => [...(JSON.parse(key) as string[]), count]);
    return db
      .prepare(
        `INSERT INTO counters (bucket, direction, name, outcome, count)
         SELECT ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
           json_extract(value, '$[3]')
         FROM json_each(?1) WHERE true
         ON CONFLICT (bucket, direction, name, outcome) DO UPDATE SET count = count + excluded.count`,
      )
      .bind(JSON.stringify(rows), bucketOf(now));
  }

  /** The upsert adding every latency to its bucket's bins (migrations/0005_latency.sql), or undefined without any. */
  latencyStatement(db: D1Database, now = new Date()): D1PreparedStatement | undefined {
    if (this.latencies.size === 0) return undefined;
    const rows = [...this.latencies].map(([key, count]) => [...(JSON.parse(key) as [string, number]), count]);
    return db
      .prepare(
        `INSERT INTO latency (bucket, direction, ge_ms, count)
         SELECT ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]')
         FROM json_each(?1) WHERE true
         ON CONFLICT (bucket, direction, ge_ms) DO UPDATE SET count = count + excluded.count`,
      )
      .bind(JSON.stringify(rows), bucketOf(now));
  }

  /** Both upserts: what a batch that measured latency writes. */
  statements(db: D1Database, now = new Date()): D1PreparedStatement[] {
    return [this.statement(db, now), this.latencyStatement(db, now)].filter((statement) => statement !== undefined);
  }
}

/**
 * A request's counts, written after its answer (one statement, never one per
 * event). A failed write is logged, not retried: the request was answered.
 */
export function writeCountsAfterAnswer(
  ctx: Pick<ExecutionContext, "waitUntil">,
  db: D1Database | undefined,
  counters: Counters,
  what: string,
): void {
  const statements = db ? counters.statements(db) : [];
  if (!db || statements.length === 0) return;
  ctx.waitUntil(
    db.batch(statements).then(
      () => undefined,
      (error: unknown) => log("warn", `could not count ${what}`, { error: describeError(error) }),
    ),
  );
}

/** Hourly rows: the 5-minute buckets of each hour summed. */
export async function readCounters(db: D1Database, range: { since: Date; until?: Date }): Promise<CounterRow[]> {
  const { results } = await db
    .prepare(
      `SELECT substr(bucket, 1, 13) || ':00:00.000Z' AS hour, direction, name, outcome, sum(count) AS count
       FROM counters WHERE bucket >= ?1 AND (?2 IS NULL OR bucket < ?2)
       GROUP BY 1, direction, name, outcome
       ORDER BY 1, direction, name, outcome`,
    )
    .bind(hourOf(range.since), range.until ? range.until.toISOString() : null)
    .all<CounterRow>();
  return results;
}

/** The window of the failure rate the alerts and readiness judge. */
export const RATE_WINDOW_MS = 15 * 60_000;

export type OutcomeCounts = Record<Direction, Partial<Record<CounterOutcome, number>>>;

/** Each direction's outcomes since the 5-minute bucket `since` falls in, all names together. */
export async function readRecentOutcomes(db: D1Database, since: Date): Promise<OutcomeCounts> {
  const { results } = await db
    .prepare(
      `SELECT direction, outcome, sum(count) AS count FROM counters WHERE bucket >= ?1 GROUP BY direction, outcome`,
    )
    .bind(bucketOf(since))
    .all<{ direction: Direction; outcome: CounterOutcome; count: number }>();
  const counts: OutcomeCounts = { inbound: {}, outbound: {} };
  for (const row of results) counts[row.direction][row.outcome] = row.count;
  return counts;
}

/**
 * Each direction's latency histogram over the 5-minute buckets from the one
 * `since` falls in, to `until`. Before migrations/0005_latency.sql is applied
 * there is none to read, which is not the ledger failing: empty histograms.
 */
export async function readLatency(
  db: D1Database,
  range: { since: Date; until?: Date },
): Promise<Record<Direction, Histogram>> {
  const histograms: Record<Direction, Histogram> = { inbound: new Map(), outbound: new Map() };
  let results: { direction: Direction; ge_ms: number; count: number }[];
  try {
    ({ results } = await db
      .prepare(
        `SELECT direction, ge_ms, sum(count) AS count FROM latency WHERE bucket >= ?1 AND (?2 IS NULL OR bucket < ?2)
         GROUP BY direction, ge_ms`,
      )
      .bind(bucketOf(range.since), range.until ? range.until.toISOString() : null)
      .all<{ direction: Direction; ge_ms: number; count: number }>());
  } catch (error) {
    if (isMissingTable(error)) return histograms;
    throw error;
  }
  const bounds: readonly number[] = LATENCY_BOUNDS_MS;
  for (const row of results) if (bounds.includes(row.ge_ms)) histograms[row.direction].set(row.ge_ms, row.count);
  return histograms;
}

/** The counters and latencies older than `before`: what the daily cron deletes. */
export const pruneCountersStatements = (db: D1Database, before: string): D1PreparedStatement[] => [
  db.prepare("DELETE FROM counters WHERE bucket < ?1").bind(before),
  db.prepare("DELETE FROM latency WHERE bucket < ?1").bind(before),
];
