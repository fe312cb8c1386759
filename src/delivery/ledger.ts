/**
 * The delivery ledger (D1 binding LEDGER, schema in migrations/): the dead
 * letters, the counters and latencies per 5 minutes, and the Vero calls recorded before the
 * mailboxes kept their own (read for jobs queued before them, then pruned). Every batch of
 * rows travels as one JSON parameter expanded by `json_each`, so one
 * statement serves a batch of any size within D1's 100 bound parameters.
 */
import * as z from "zod/mini";
import type { Env } from "../shared/env.ts";
import { describeError, log } from "../shared/log.ts";
import "../shared/zod.ts";
import { binOf, type Histogram, LATENCY, LATENCY_BOUNDS_MS } from "./latency.ts";

export const LEDGER_UNBOUND = "the LEDGER D1 database is not bound (see wrangler.toml)";

/** What to run when D1 answers "no such table": the ledger is bound but its schema (migrations/) is not applied. */
export const LEDGER_UNMIGRATED =
  "the ledger (D1 binding LEDGER) has no schema yet: apply migrations/ with `npx wrangler d1 migrations apply LEDGER --local` under a plain wrangler dev, or `npm run deploy` (which runs it with --remote) deployed";

export const isMissingTable = (error: unknown) => error instanceof Error && /no such table/i.test(error.message);

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

/** Which queue a dead letter came from, so a re-drive sends it back there. */
export const deadLetterSource = z.enum(["segment", "vero"]);
export type DeadLetterSource = z.infer<typeof deadLetterSource>;

export const deadLetterSchema = z.object({
  id: z.string(),
  source: deadLetterSource,
  /** The queue message's body, as it was enqueued. */
  body: z.unknown(),
  reason: z.string(),
  /** Whether the failure was permanent (bad data) or retries ran out (the upstream stayed down). */
  permanent: z.boolean(),
  attempts: z.int().check(z.nonnegative()),
  failedAt: z.string(),
});
export type DeadLetter = z.infer<typeof deadLetterSchema>;
export type DeadLetterSummary = Omit<DeadLetter, "body">;

export interface DeadLetterFilter {
  source?: DeadLetterSource;
  /** A substring of the reason, any case. */
  reason?: string;
  /** ISO: only letters that failed at or after it. */
  since?: string;
  cursor?: string;
  /** 1..1000, default 100. */
  limit?: number;
}

export const DEFAULT_PAGE_SIZE = 100;

// ---- Vero calls ------------------------------------------------------------

/** One Vero call of one event: its position among the event's calls and the call, so two calls of one path differ. */
export const callKey = (step: number, method: string, path: string) => `${step} ${method} ${path}`;

/** An event without a messageId is named by its position (`#3`): such a name says nothing across requests. */
export const isLedgerKey = (messageId: string) => !messageId.startsWith("#");

const pairKey = (messageId: string, call: string) => `${messageId}\n${call}`;

/** The recorded calls of `messageIds`, as keys for `isDone`; one query whatever their number. */
export async function lookupCalls(db: D1Database, messageIds: Iterable<string>): Promise<Set<string>> {
  const ids = [...new Set(messageIds)].filter(isLedgerKey);
  const done = new Set<string>();
  if (ids.length === 0) return done;
  const { results } = await db
    .prepare("SELECT message_id, call FROM vero_calls WHERE message_id IN (SELECT value FROM json_each(?1))")
    .bind(JSON.stringify(ids))
    .all<{ message_id: string; call: string }>();
  for (const row of results) done.add(pairKey(row.message_id, row.call));
  return done;
}

// ---- Stalled mailboxes ----------------------------------------------------

/** How many mailboxes' oldest job waits since before `before`, and the oldest time: the alerts and readiness read it. */
export function stalledSummary(db: D1Database, before: Date): D1PreparedStatement {
  return db
    .prepare("SELECT count(*) AS count, min(oldest_at) AS oldest FROM stalled_mailboxes WHERE oldest_at < ?1")
    .bind(before.toISOString());
}

// ---- Counters --------------------------------------------------------------

/** The hour `date` falls in, as `readCounters` reports it. */
export function hourOf(date: Date): string {
  const hour = new Date(date);
  hour.setUTCMinutes(0, 0, 0);
  return hour.toISOString();
}

/** Counters are stored per 5 minutes, fine enough for the alerts' 15-minute failure rate; reads sum them to hours. */
export const BUCKET_MS = 5 * 60_000;

/** The 5-minute bucket `date` falls in, as stored (in the column named `hour`, which holds the bucket's start). */
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
        `INSERT INTO counters (hour, direction, name, outcome, count)
         SELECT ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
           json_extract(value, '$[3]')
         FROM json_each(?1) WHERE true
         ON CONFLICT (hour, direction, name, outcome) DO UPDATE SET count = count + excluded.count`,
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
      `SELECT substr(hour, 1, 13) || ':00:00.000Z' AS hour, direction, name, outcome, sum(count) AS count
       FROM counters WHERE hour >= ?1 AND (?2 IS NULL OR hour < ?2)
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
      `SELECT direction, outcome, sum(count) AS count FROM counters WHERE hour >= ?1 GROUP BY direction, outcome`,
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

// ---- Dead letters ----------------------------------------------------------

interface DeadLetterRow {
  id: string;
  source: DeadLetterSource;
  body: string;
  reason: string;
  permanent: number;
  attempts: number;
  failed_at: string;
}

const summaryOf = (row: Omit<DeadLetterRow, "body">): DeadLetterSummary => ({
  id: row.id,
  source: row.source,
  reason: row.reason,
  permanent: row.permanent === 1,
  attempts: row.attempts,
  failedAt: row.failed_at,
});

/** One statement per letter: a letter's body may be up to a queue message's 128 KB. */
export function storeDeadLetterStatements(db: D1Database, letters: DeadLetter[]): D1PreparedStatement[] {
  const insert = db.prepare(
    `INSERT INTO dead_letters (id, source, body, reason, permanent, attempts, failed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (id) DO UPDATE SET source = excluded.source, body = excluded.body, reason = excluded.reason,
       permanent = excluded.permanent, attempts = excluded.attempts, failed_at = excluded.failed_at`,
  );
  return letters.map((letter) =>
    insert.bind(
      letter.id,
      letter.source,
      JSON.stringify(letter.body ?? null),
      letter.reason,
      letter.permanent ? 1 : 0,
      letter.attempts,
      letter.failedAt,
    ),
  );
}

export async function storeDeadLetters(db: D1Database, letters: DeadLetter[]): Promise<void> {
  if (letters.length > 0) await db.batch(storeDeadLetterStatements(db, letters));
}

export async function getDeadLetter(db: D1Database, id: string): Promise<DeadLetter | undefined> {
  return (await getDeadLetters(db, [id]))[0];
}

/** The letters `ids` that still exist, bodies included, in the order of `ids`; one query whatever their number. */
export async function getDeadLetters(db: D1Database, ids: readonly string[]): Promise<DeadLetter[]> {
  if (ids.length === 0) return [];
  const { results } = await db
    .prepare("SELECT * FROM dead_letters WHERE id IN (SELECT value FROM json_each(?1))")
    .bind(JSON.stringify(ids))
    .all<DeadLetterRow>();
  const byId = new Map(results.map((row) => [row.id, row]));
  return ids.flatMap((id) => {
    const row = byId.get(id);
    return row ? [deadLetterSchema.parse({ ...summaryOf(row), body: JSON.parse(row.body) })] : [];
  });
}

/** Deletes the letters `ids` in one statement; returns how many there were. */
export async function deleteDeadLetterIds(db: D1Database, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await db
    .prepare("DELETE FROM dead_letters WHERE id IN (SELECT value FROM json_each(?1))")
    .bind(JSON.stringify(ids))
    .run();
  return result.meta.changes;
}

/** False when there was no such letter. */
export async function deleteDeadLetter(db: D1Database, id: string): Promise<boolean> {
  return (await deleteDeadLetterIds(db, [id])) > 0;
}

/** Newest first; the cursor is the last letter's (failedAt, id), opaque to callers. */
const cursorSchema = z.tuple([z.string(), z.string()]);

function decodeCursor(cursor: string): [string, string] | undefined {
  try {
    const parsed = cursorSchema.safeParse(JSON.parse(atob(cursor)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export class BadCursor extends Error {
  override name = "BadCursor";
}

export async function listDeadLetters(
  db: D1Database,
  filter: DeadLetterFilter,
): Promise<{ letters: DeadLetterSummary[]; total: number; cursor?: string }> {
  const after = filter.cursor === undefined ? undefined : decodeCursor(filter.cursor);
  if (filter.cursor !== undefined && !after) throw new BadCursor("cursor is not one this bridge returned");
  const limit = filter.limit ?? DEFAULT_PAGE_SIZE;
  const where = `(?1 IS NULL OR source = ?1) AND (?2 IS NULL OR instr(lower(reason), lower(?2)) > 0)
    AND (?3 IS NULL OR failed_at >= ?3)`;
  const filters = [filter.source ?? null, filter.reason ?? null, filter.since ?? null];
  // The page and the count in one round trip; one more row than the page says whether another follows.
  const [page, count] = await db.batch<unknown>([
    db
      .prepare(
        `SELECT id, source, reason, permanent, attempts, failed_at FROM dead_letters
         WHERE ${where} AND (?4 IS NULL OR (failed_at, id) < (?4, ?5))
         ORDER BY failed_at DESC, id DESC LIMIT ?6`,
      )
      .bind(...filters, after?.[0] ?? null, after?.[1] ?? null, limit + 1),
    db.prepare(`SELECT count(*) AS total FROM dead_letters WHERE ${where}`).bind(...filters),
  ]);
  const rows = (page?.results ?? []) as Omit<DeadLetterRow, "body">[];
  const total = ((count?.results ?? [])[0] as { total: number } | undefined)?.total ?? 0;
  const letters = rows.slice(0, limit).map(summaryOf);
  const last = letters.at(-1);
  if (rows.length <= limit || !last) return { letters, total };
  return { letters, total, cursor: btoa(JSON.stringify([last.failedAt, last.id])) };
}

// ---- Retention -------------------------------------------------------------

export const DEFAULT_RETENTION_DAYS = 7;
const MAX_RETENTION_DAYS = 3650;
const retentionSchema = z.pipe(
  z.coerce.number(),
  z.int().check(z.minimum(DEFAULT_RETENTION_DAYS), z.maximum(MAX_RETENTION_DAYS)),
);

/**
 * LEDGER_RETENTION_DAYS, validated. Read by the cron, which has no response
 * to put a 503 in: an invalid value is logged and the default applies, since
 * a shorter window than 7 days would let re-sent events through.
 */
export function retentionDays(env: Pick<Env, "LEDGER_RETENTION_DAYS">): number {
  const raw = env.LEDGER_RETENTION_DAYS;
  if (raw === undefined || String(raw).trim() === "") return DEFAULT_RETENTION_DAYS;
  const parsed = retentionSchema.safeParse(String(raw).trim());
  if (parsed.success) return parsed.data;
  log("error", `LEDGER_RETENTION_DAYS is not a whole number of days from 7 to ${MAX_RETENTION_DAYS}; using 7`, {});
  return DEFAULT_RETENTION_DAYS;
}

/** How many of the previous ledger's recorded calls one cron run deletes at most: D1 queries are time-limited. */
export const PRUNE_CHUNK_ROWS = 10_000;

/**
 * Deletes counters and latencies older than the retention, and a bounded chunk of the
 * previous ledger's recorded calls (the mailboxes keep their own now), so
 * no run issues an unbounded DELETE; the table empties over a few days.
 * Dead letters stay until an operator acts.
 */
export async function pruneLedger(
  db: D1Database,
  days: number,
  now = new Date(),
): Promise<{ calls: number; counters: number; latency: number; before: string }> {
  const before = new Date(now.getTime() - days * 86_400_000).toISOString();
  const [calls, counters, latency] = await db.batch([
    db
      .prepare(
        `DELETE FROM vero_calls WHERE (message_id, call) IN (
           SELECT message_id, call FROM vero_calls WHERE done_at < ?1 LIMIT ?2)`,
      )
      .bind(before, PRUNE_CHUNK_ROWS),
    db.prepare("DELETE FROM counters WHERE hour < ?1").bind(before),
    db.prepare("DELETE FROM latency WHERE bucket < ?1").bind(before),
  ]);
  return {
    calls: calls?.meta.changes ?? 0,
    counters: counters?.meta.changes ?? 0,
    latency: latency?.meta.changes ?? 0,
    before,
  };
}
