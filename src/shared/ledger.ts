/**
 * The ledger (D1, binding LEDGER): dead letters waiting for an operator, and
 * hourly counts of what flowed in each direction. Schema: migrations/.
 */
export type Direction = "inbound" | "outbound";
export type CounterOutcome = "delivered" | "retried" | "dead_lettered" | "refused";
export interface CounterRow {
  /** The hour's start, ISO 8601 in UTC. */
  hour: string;
  direction: Direction;
  /** An event name (inbound) or a Vero call such as "POST /events/track" (outbound). */
  name: string;
  outcome: CounterOutcome;
  count: number;
}

export type DeadLetterSource = "segment" | "vero";
export interface DeadLetter {
  id: string;
  source: DeadLetterSource;
  body: unknown;
  reason: string;
  permanent: boolean;
  attempts: number;
  failedAt: string;
}
export type DeadLetterSummary = Omit<DeadLetter, "body">;
export interface DeadLetterFilter {
  source?: DeadLetterSource;
  /** A substring of the reason, case-insensitive. */
  reason?: string;
  /** ISO 8601: letters that failed at or after it. */
  since?: string;
  cursor?: string;
  /** 1..1000, default 100. */
  limit?: number;
}

interface LetterRow {
  id: string;
  source: DeadLetterSource;
  reason: string;
  permanent: number;
  attempts: number;
  failed_at: string;
  body?: string;
}

const SUMMARY_COLUMNS = "id, source, reason, permanent, attempts, failed_at";

function summaryOf(row: LetterRow): DeadLetterSummary {
  return {
    id: row.id,
    source: row.source,
    reason: row.reason,
    permanent: row.permanent === 1,
    attempts: row.attempts,
    failedAt: row.failed_at,
  };
}

function whereOf(filter: DeadLetterFilter): { sql: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  if (filter.source) {
    clauses.push("source = ?");
    params.push(filter.source);
  }
  if (filter.reason) {
    clauses.push("instr(lower(reason), lower(?)) > 0");
    params.push(filter.reason);
  }
  if (filter.since) {
    clauses.push("failed_at >= ?");
    params.push(filter.since);
  }
  return { sql: clauses.length > 0 ? `WHERE ${clauses.join(" AND ")}` : "", params };
}

/** The cursor is the offset of the next page: listings are newest first and short-lived. */
function offsetOf(cursor: string | undefined): number {
  const offset = Number(cursor ?? 0);
  return Number.isSafeInteger(offset) && offset >= 0 ? offset : 0;
}

export async function listDeadLetters(
  db: D1Database,
  filter: DeadLetterFilter,
): Promise<{ letters: DeadLetterSummary[]; total: number; cursor?: string }> {
  const limit = Math.min(1000, Math.max(1, Math.trunc(filter.limit ?? 100)));
  const offset = offsetOf(filter.cursor);
  const where = whereOf(filter);
  const [rows, count] = await db.batch<LetterRow | { total: number }>([
    db
      .prepare(
        `SELECT ${SUMMARY_COLUMNS} FROM dead_letters ${where.sql} ORDER BY failed_at DESC, id DESC LIMIT ? OFFSET ?`,
      )
      .bind(...where.params, limit, offset),
    db.prepare(`SELECT count(*) AS total FROM dead_letters ${where.sql}`).bind(...where.params),
  ]);
  const letters = ((rows?.results ?? []) as LetterRow[]).map(summaryOf);
  const total = ((count?.results ?? [])[0] as { total: number } | undefined)?.total ?? 0;
  return offset + letters.length < total
    ? { letters, total, cursor: String(offset + letters.length) }
    : { letters, total };
}

export async function getDeadLetter(db: D1Database, id: string): Promise<DeadLetter | undefined> {
  const row = await db
    .prepare(`SELECT ${SUMMARY_COLUMNS}, body FROM dead_letters WHERE id = ?`)
    .bind(id)
    .first<LetterRow>();
  if (!row) return undefined;
  return { ...summaryOf(row), body: JSON.parse(row.body ?? "null") };
}

export async function deleteDeadLetter(db: D1Database, id: string): Promise<boolean> {
  const result = await db.prepare("DELETE FROM dead_letters WHERE id = ?").bind(id).run();
  return result.meta.changes > 0;
}

export async function storeDeadLetters(db: D1Database, letters: DeadLetter[]): Promise<void> {
  if (letters.length === 0) return;
  // A message dead-lettered twice (a retried DLQ batch) keeps one row, the latest.
  const insert = db.prepare(
    "INSERT OR REPLACE INTO dead_letters (id, source, body, reason, permanent, attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  await db.batch(
    letters.map((letter) =>
      insert.bind(
        letter.id,
        letter.source,
        JSON.stringify(letter.body ?? null),
        letter.reason,
        letter.permanent ? 1 : 0,
        letter.attempts,
        letter.failedAt,
      ),
    ),
  );
}

export async function readCounters(db: D1Database, range: { since: Date; until?: Date }): Promise<CounterRow[]> {
  const until = range.until ?? new Date();
  const { results } = await db
    .prepare(
      "SELECT hour, direction, name, outcome, count FROM counters WHERE hour >= ? AND hour < ? ORDER BY hour, direction, name, outcome",
    )
    .bind(range.since.toISOString(), until.toISOString())
    .all<CounterRow>();
  return results;
}
