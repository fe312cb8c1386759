/**
 * The dead-letter store (D1 table `dead_letters`): messages that will not be
 * delivered without an operator, kept with the reason until they are
 * re-driven (src/admin/redrive.ts) or deleted. Nothing is dropped silently:
 * a permanent failure and an exhausted retry budget both end here. Bodies
 * are kept as they were enqueued, read by no one here.
 */
import * as z from "zod/mini";
import { LEDGER_UNBOUND } from "../shared/bindings.ts";
import type { Env } from "../shared/env.ts";
import { BridgeError } from "../shared/errors.ts";
import { log } from "../shared/log.ts";
import "../shared/zod.ts";

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

/** The ledger, or the 503 that names the binding. */
export function requireLedger(env: Env): D1Database {
  if (!env.LEDGER) {
    throw new BridgeError(503, "not_configured", LEDGER_UNBOUND, {
      details: { missing: ["LEDGER"], invalid: [] },
    });
  }
  return env.LEDGER;
}

/** The dead letter `id`, or the 404 that names it. */
export async function requireDeadLetter(db: D1Database, id: string): Promise<DeadLetter> {
  const letter = await getDeadLetter(db, id);
  if (!letter) throw new BridgeError(404, "not_found", `no dead letter ${id}`);
  return letter;
}

/** An operator's decision that a dead letter will not be delivered. */
export async function discardDeadLetter(db: D1Database, letter: DeadLetter): Promise<void> {
  await deleteDeadLetter(db, letter.id);
  log("info", "dead letter deleted", { id: letter.id, source: letter.source });
}
