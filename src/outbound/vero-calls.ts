/**
 * The D1 table `vero_calls`, where the bridge recorded
 * the calls Vero accepted before each user's mailbox kept its own. Read only
 * for jobs queued before the mailboxes (`v: 1`), so that they resume after
 * the calls already made; no new row is written, and the daily cron empties
 * it a chunk at a time.
 *
 * Removable, with the table, once no `v: 1` job can exist anywhere: 14 days
 * (the longest queue retention Cloudflare allows) after every deployment
 * runs the mailboxes, and no Vero dead letter of version 1 left in the
 * store, where letters wait for an operator without limit (docs/operations.md#upgrading-to-the-mailboxes
 * gives the query that checks it). Until every deployment has met both, it stays.
 */
import { isLedgerKey, type VeroJob } from "./job.ts";

/**
 * The calls `vero_calls` recorded for the jobs of `jobs` queued before the
 * mailboxes (`v: 1`), by messageId: one query, and none at all once no
 * such job is left (`d1Statements` says which).
 */
export async function recordedBefore(
  db: D1Database | undefined,
  jobs: readonly VeroJob[],
): Promise<{ recorded: Map<string, string[]>; d1Statements: number }> {
  const ids = [...new Set(jobs.filter((job) => job.v === 1 && isLedgerKey(job.messageId)).map((job) => job.messageId))];
  const recorded = new Map<string, string[]>();
  if (ids.length === 0 || !db) return { recorded, d1Statements: 0 };
  const { results } = await db
    .prepare("SELECT message_id, call FROM vero_calls WHERE message_id IN (SELECT value FROM json_each(?1))")
    .bind(JSON.stringify(ids))
    .all<{ message_id: string; call: string }>();
  for (const row of results) recorded.set(row.message_id, [...(recorded.get(row.message_id) ?? []), row.call]);
  return { recorded, d1Statements: 1 };
}

/** How many recorded calls one cron run deletes at most: D1 queries are time-limited. */
export const PRUNE_CHUNK_ROWS = 10_000;

/** A bounded chunk of the recorded calls older than `before`, so that no run issues an unbounded DELETE. */
export const pruneCallsStatement = (db: D1Database, before: string): D1PreparedStatement =>
  db
    .prepare(
      `DELETE FROM vero_calls WHERE (message_id, call) IN (
         SELECT message_id, call FROM vero_calls WHERE done_at < ?1 LIMIT ?2)`,
    )
    .bind(before, PRUNE_CHUNK_ROWS);
