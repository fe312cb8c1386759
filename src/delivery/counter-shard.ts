/**
 * A counter shard: a Durable Object that sums the counts (and latencies)
 * mailboxes report and writes them to D1's counters (and latency bins) on its own alarm, a few seconds
 * after the first report it holds. D1 then takes one statement per shard,
 * time bucket and table every few seconds, whatever the number of users.
 */
import { DurableObject } from "cloudflare:workers";
import { LEDGER_UNBOUND } from "../shared/bindings.ts";
import type { Env } from "../shared/env.ts";
import { describeError, log } from "../shared/log.ts";
import { type CountedOutcome, Counters, type Direction } from "./counters.ts";

/** [time bucket (ISO), direction, name, outcome, count] */
export type CountRow = [string, Direction, string, CountedOutcome, number];

/** One mailbox's counts since its last report; `seq` lets the shard skip a report it took already. */
export interface CountReport {
  from: string;
  seq: number;
  rows: CountRow[];
}

/**
 * Shards of the counters: enough that they are not the first limit (each
 * takes about 1,000 requests a second, so 16 take some 16,000 reports a
 * second, above a queue's 5,000 messages), few enough to keep D1 statements
 * rare (a shard writes only when it holds reports).
 */
export const COUNTER_SHARDS = 16;
/** How long a shard gathers reports before it writes them. */
export const FLUSH_AFTER_MS = 5_000;
const RETRY_FLUSH_MS = 30_000;
/** A source unheard of for this long is forgotten (its next report starts a new sequence only after a week idle). */
const FORGET_SOURCE_MS = 7 * 86_400_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS pending (
  bucket TEXT NOT NULL,
  direction TEXT NOT NULL,
  name TEXT NOT NULL,
  outcome TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (bucket, direction, name, outcome)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sources (source TEXT PRIMARY KEY, seq INTEGER NOT NULL, seen_at INTEGER NOT NULL) WITHOUT ROWID;
`;

/** The shard a mailbox (by its id) reports to. */
export function counterShardFor(env: Env, from: string): DurableObjectStub<CounterShard> {
  const namespace = env.COUNTERS as DurableObjectNamespace<CounterShard> | undefined;
  if (!namespace) throw new Error("the COUNTERS Durable Object namespace is not bound");
  const shard = Number.parseInt(from.slice(-6), 16) % COUNTER_SHARDS || 0;
  return namespace.get(namespace.idFromName(`counters-${shard}`));
}

export class CounterShard extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(SCHEMA);
  }

  /** Adds a report's counts, once: a report sent again after a lost answer is recognised by its sequence. */
  async add(report: CountReport): Promise<void> {
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      const last = this.sql.exec<{ seq: number }>("SELECT seq FROM sources WHERE source = ?", report.from).toArray()[0];
      if (last && last.seq >= report.seq) return;
      for (const [bucket, direction, name, outcome, count] of report.rows) {
        this.sql.exec(
          `INSERT INTO pending (bucket, direction, name, outcome, count) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (bucket, direction, name, outcome) DO UPDATE SET count = count + excluded.count`,
          bucket,
          direction,
          name,
          outcome,
          count,
        );
      }
      this.sql.exec(
        "INSERT INTO sources (source, seq, seen_at) VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET seq = excluded.seq, seen_at = excluded.seen_at",
        report.from,
        report.seq,
        now,
      );
    });
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now + FLUSH_AFTER_MS);
  }

  /** Writes what is pending, one statement per time bucket; on failure keeps it and tries again. Never throws. */
  override async alarm(): Promise<void> {
    const rows = this.sql
      .exec<{ bucket: string; direction: Direction; name: string; outcome: CountedOutcome; count: number }>(
        "SELECT bucket, direction, name, outcome, count FROM pending",
      )
      .toArray();
    const byBucket = new Map<string, Counters>();
    for (const row of rows) {
      const counters = byBucket.get(row.bucket) ?? new Counters();
      counters.add(row.direction, row.name, row.outcome, row.count);
      byBucket.set(row.bucket, counters);
    }
    let failure: string | undefined;
    let d1Statements = 0;
    if (rows.length > 0) {
      const db = this.env.LEDGER;
      try {
        if (!db) throw new Error(LEDGER_UNBOUND);
        const statements = [...byBucket].flatMap(([bucket, counters]) => counters.statements(db, new Date(bucket)));
        d1Statements = statements.length;
        await db.batch(statements);
        // Reports may have arrived during the write: only what was written is taken off.
        this.ctx.storage.transactionSync(() => {
          for (const row of rows)
            this.sql.exec(
              "UPDATE pending SET count = count - ? WHERE bucket = ? AND direction = ? AND name = ? AND outcome = ?",
              row.count,
              row.bucket,
              row.direction,
              row.name,
              row.outcome,
            );
          this.sql.exec("DELETE FROM pending WHERE count <= 0");
          this.sql.exec("DELETE FROM sources WHERE seen_at < ?", Date.now() - FORGET_SOURCE_MS);
        });
      } catch (error) {
        failure = describeError(error);
      }
    }
    const left = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pending").one().n;
    if (failure !== undefined) await this.ctx.storage.setAlarm(Date.now() + RETRY_FLUSH_MS);
    else if (left > 0) await this.ctx.storage.setAlarm(Date.now() + FLUSH_AFTER_MS);
    log(failure === undefined ? "info" : "error", "counters flushed", {
      shard: this.ctx.id.toString(),
      rows: rows.length,
      d1Statements,
      doRequests: 0,
      ...(failure === undefined ? {} : { error: failure, retryInSeconds: RETRY_FLUSH_MS / 1000 }),
    });
  }
}
