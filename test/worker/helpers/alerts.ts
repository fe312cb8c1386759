/** What the alert and readiness tests share: a receiver tenant, a clean ledger, and ledger doubles. */
import { inject } from "vitest";
import { StandInClient } from "../../../dev/stand-ins/client.ts";
import { type CounterOutcome, Counters, type Direction } from "../../../src/delivery/counters.ts";
import { storeDeadLetters } from "../../../src/delivery/dead-letters.ts";
import { baseEnv } from "./env.ts";

export const receiver = new StandInClient(inject("alertsOrigin"));

/** A webhook of its own on the receiver stand-in, as ALERT_WEBHOOK_URL. */
export async function alertWebhook(): Promise<{ url: string; key: string }> {
  const key = await receiver.tenant();
  return { url: `${receiver.origin}/hooks/${key}`, key };
}

export const ledger = () => baseEnv.LEDGER as D1Database;

/** The tests of a file share the ledger: each starts from an empty one, as far as alerts read it. */
export async function clearAlertTables(): Promise<void> {
  const db = ledger();
  await db.batch([
    db.prepare("DELETE FROM dead_letters"),
    db.prepare("DELETE FROM counters"),
    db.prepare("DELETE FROM alert_state"),
    db.prepare("DELETE FROM alerts_sent"),
    db.prepare("DROP TABLE IF EXISTS stalled_mailboxes"),
  ]);
}

/**
 * The table the per-user mailboxes' migration creates (the same SQL): until
 * that migration is in this tree, tests that need it create it here.
 */
export async function createStalledMailboxesTable(): Promise<void> {
  await ledger()
    .prepare(
      `CREATE TABLE IF NOT EXISTS stalled_mailboxes (
        mailbox TEXT PRIMARY KEY,
        oldest_at TEXT NOT NULL,
        since TEXT NOT NULL,
        reason TEXT NOT NULL,
        updated_at TEXT NOT NULL
      ) WITHOUT ROWID`,
    )
    .run();
}

export async function addDeadLetter(
  id: string,
  failedAt: Date,
  reason = "Vero answered 400: bad event",
): Promise<void> {
  await storeDeadLetters(ledger(), [
    { id, source: "vero", body: { id }, reason, permanent: true, attempts: 1, failedAt: failedAt.toISOString() },
  ]);
}

export async function count(direction: Direction, outcome: CounterOutcome, by: number, at: Date): Promise<void> {
  const counters = new Counters();
  counters.add(direction, "POST /events/track", outcome, by);
  await counters.statement(ledger(), at)?.run();
}

/** A ledger that cannot be reached: every statement fails as D1 does when it is down. */
export function unreachableLedger(): D1Database {
  const fail = () => {
    throw new Error("D1_ERROR: Network connection lost.");
  };
  return new Proxy({} as D1Database, { get: () => fail });
}

export const minutes = (n: number) => n * 60_000;
