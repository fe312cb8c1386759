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
import { isLedgerKey } from "./job.ts";

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
