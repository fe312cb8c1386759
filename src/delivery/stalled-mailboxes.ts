/**
 * D1's `stalled_mailboxes`, as the alerts and readiness read it: each row
 * is a Vero user's mailbox whose deliveries are failing, backlogged or
 * capped, written and cleared by the mailbox itself.
 */

/** How many mailboxes' oldest job waits since before `before`, and the oldest time. */
export function stalledSummary(db: D1Database, before: Date): D1PreparedStatement {
  return db
    .prepare("SELECT count(*) AS count, min(oldest_at) AS oldest FROM stalled_mailboxes WHERE oldest_at < ?1")
    .bind(before.toISOString());
}
