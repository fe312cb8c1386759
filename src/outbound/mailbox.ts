/**
 * The mailbox of one Vero user: a SQLite-backed Durable Object that holds
 * the user's jobs and delivers them one Vero call at a time, in order. It
 * is single-threaded, so the user's order and exactly-once are held here;
 * different users' mailboxes run side by side.
 *
 * - `accept` commits jobs in one transaction, skipping a messageId it holds
 *   or whose calls its ledger has all recorded, and arms the alarm.
 * - The alarm delivers the head job's calls; each call Vero accepts is
 *   recorded in the ledger (`calls`) in the transaction that marks it done.
 *   A retryable failure holds back only this user, retried on the alarm by
 *   the retry schedule; a permanent failure, or the end of the horizon,
 *   becomes a dead letter in D1 and the mailbox moves on.
 * - Counts gathered in the mailbox are reported to a counter shard (see
 *   counter-shard.ts) at most every REPORT_EVERY_MS, so that a busy user
 *   costs one report per few seconds, not one per event; the shard writes
 *   them to D1 a few times a minute.
 */

import { DurableObject } from "cloudflare:workers";
import { createHash } from "node:crypto";
import type { CountReport, CountRow } from "../delivery/counter-shard.ts";
import { counterShardFor } from "../delivery/counter-shard.ts";
import {
  bucketOf,
  type CounterOutcome,
  callKey,
  isLedgerKey,
  LEDGER_UNBOUND,
  storeDeadLetters,
} from "../delivery/ledger.ts";
import { backoffSeconds, nextStep, type RetryPolicy } from "../delivery/retry-schedule.ts";
import type { Env } from "../shared/env.ts";
import { DeliveryError } from "../shared/errors.ts";
import { configureLogs, describeError, log, redactEmails } from "../shared/log.ts";
import type { VeroJob } from "./job.ts";
import type { VeroRequest } from "./map.ts";
import { sendToVero, type VeroTarget } from "./vero.ts";

/** What a mailbox delivers with: the settings of the Worker that handed it the jobs. */
export interface MailboxConfig {
  target: VeroTarget;
  policy: RetryPolicy;
  retentionDays: number;
  /** LOG_SAMPLE_RATE: the share of messageIds whose success lines are logged, as in the Worker. */
  logSampleRate: number;
}

/** A job for a mailbox, with the calls the previous (D1) ledger recorded for it, if any. */
export interface Letter {
  job: VeroJob;
  recorded?: string[];
}

export interface Accepted {
  accepted: number;
  skipped: number;
}

/** The name a call is counted under, e.g. "POST /events/track". */
export const callName = (request: Pick<VeroRequest, "method" | "path">) => `${request.method} ${request.path}`;

/**
 * The Vero calls one alarm run makes at most, then it continues in a new
 * run: the Workers Free plan allows 50 subrequests to the Internet per
 * invocation, and a deletion may take two.
 */
export const CALLS_PER_DRAIN = 40;
/** How soon a drain that threw, or a report that failed, is tried again. */
export const RETRY_LATER_MS = 30_000;
/** The least time between two reports of a mailbox's counts: each costs a shard call and four rows written. */
export const REPORT_EVERY_MS = 5_000;
const DAY_MS = 86_400_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
  body TEXT NOT NULL,
  at INTEGER NOT NULL,
  rseq INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL DEFAULT 0,
  failing_since INTEGER,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_order ON jobs (at, rseq, seq);
CREATE INDEX IF NOT EXISTS jobs_message_id ON jobs (message_id);
CREATE TABLE IF NOT EXISTS calls (
  message_id TEXT NOT NULL,
  call TEXT NOT NULL,
  status INTEGER NOT NULL,
  done_at INTEGER NOT NULL,
  PRIMARY KEY (message_id, call)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS calls_done_at ON calls (done_at);
CREATE TABLE IF NOT EXISTS counts (
  bucket TEXT NOT NULL,
  name TEXT NOT NULL,
  outcome TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (bucket, name, outcome)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
`;

interface JobRow {
  seq: number;
  message_id: string;
  body: string;
  received_at: number;
  attempts: number;
  next_at: number;
  failing_since: number | null;
  [key: string]: SqlStorageValue;
}

/** One drain's summary line: the bench sums d1Statements and doRequests over these. */
interface DrainStats {
  delivered: number;
  retried: number;
  deadLettered: number;
  skippedCalls: number;
  veroCalls: number;
  d1Statements: number;
  doRequests: number;
}

/**
 * The mailbox's name: the Vero account (API URL and credential, as a hash)
 * and the user. One user of one account is one mailbox; two accounts'
 * users of the same id never wait for each other.
 */
export function mailboxName(target: VeroTarget, user: string): string {
  const account = createHash("sha256")
    .update(`${target.veroApiUrl}\n${JSON.stringify(target.veroCredential)}`)
    .digest("hex")
    .slice(0, 16);
  return `${account}\n${user}`;
}

export class Mailbox extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /**
   * The `state` table as this object last read or wrote it (undefined for
   * a key it found absent): only this object writes it, and most runs read
   * the same keys several times.
   */
  private readonly cached = new Map<string, unknown>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(SCHEMA);
  }

  /**
   * Commits `letters` (the user's jobs, in arrival order) in one
   * transaction. The RPC answer leaves the object only once the write is
   * durable (the output gate), so a caller that acks on it loses nothing.
   */
  async accept(letters: Letter[], config: MailboxConfig): Promise<Accepted> {
    const now = Date.now();
    let accepted = 0;
    let skipped = 0;
    this.transaction(() => {
      // Written only when it changed: a row written per accept would be most of the mailbox's storage writes.
      if (JSON.stringify(this.getState("config")) !== JSON.stringify(config)) this.setState("config", config);
      for (const { job, recorded = [] } of letters) {
        for (const call of recorded) this.record(job.messageId, call, 200, now);
        if (isLedgerKey(job.messageId) && (this.holds(job.messageId) || this.isDelivered(job))) {
          skipped++;
          continue;
        }
        this.sql.exec(
          "INSERT INTO jobs (message_id, body, at, rseq, received_at) VALUES (?, ?, ?, ?, ?)",
          job.messageId,
          JSON.stringify(job),
          job.at ?? now,
          job.seq ?? 0,
          now,
        );
        accepted++;
      }
    });
    // Brought forward when set later (a prune, a retry): the drain re-arms it for whatever is not due yet.
    if (accepted > 0) {
      const alarm = await this.ctx.storage.getAlarm();
      if (alarm === null || alarm > now) await this.ctx.storage.setAlarm(now);
    }
    return { accepted, skipped };
  }

  /** Never throws: Cloudflare retries a throwing alarm only a few times. */
  override async alarm(): Promise<void> {
    const sampleRate = this.getState<MailboxConfig>("config")?.logSampleRate;
    if (sampleRate !== undefined) configureLogs({ sampleRate });
    const stats: DrainStats = {
      delivered: 0,
      retried: 0,
      deadLettered: 0,
      skippedCalls: 0,
      veroCalls: 0,
      d1Statements: 0,
      doRequests: 0,
    };
    let failure: string | undefined;
    try {
      await this.drain(stats);
    } catch (error) {
      failure = describeError(error);
    }
    try {
      if (failure === undefined) await this.settleStalled(stats);
      if (this.reportDue() && !(await this.report(stats))) failure ??= "counts not reported";
      this.prune();
      await this.armAlarm(failure !== undefined);
    } catch (error) {
      failure ??= describeError(error);
      await this.ctx.storage.setAlarm(Date.now() + RETRY_LATER_MS).catch(() => undefined);
    }
    const held = this.heldCount();
    const clean = failure === undefined && stats.retried + stats.deadLettered === 0;
    log(clean ? "info" : "warn", "mailbox drain", {
      mailbox: this.ctx.id.toString(),
      ...stats,
      held,
      ...(failure === undefined ? {} : { error: failure }),
    });
  }

  /** Delivers due jobs in order until the mailbox is empty, its head waits, or the drain's call budget is spent. */
  private async drain(stats: DrainStats): Promise<void> {
    const config = this.getState<MailboxConfig>("config");
    if (!config) return;
    let calls = 0;
    for (;;) {
      const head = this.head();
      const now = Date.now();
      if (!head || head.next_at > now || calls >= CALLS_PER_DRAIN) return;
      const job = JSON.parse(head.body) as VeroJob;
      // An event without a messageId is named by its place in its request: its calls are recorded under its job.
      const ledgerId = isLedgerKey(head.message_id) ? head.message_id : `${head.message_id}@${head.seq}`;
      let failed: { error: DeliveryError; request: VeroRequest } | undefined;
      for (const [index, request] of job.requests.entries()) {
        const call = callKey((job.step ?? 0) + index, request.method, request.path);
        if (this.isRecorded(ledgerId, call)) {
          stats.skippedCalls++;
          continue;
        }
        calls++;
        stats.veroCalls++;
        try {
          const [status = 200] = await sendToVero(config.target, [request], isLedgerKey(ledgerId) ? ledgerId : null);
          this.transaction(() => {
            this.record(ledgerId, call, status, Date.now());
            this.count(callName(request), "delivered");
          });
        } catch (error) {
          // Anything but a DeliveryError is a bug: the drain stops and is tried again later.
          if (!(error instanceof DeliveryError)) throw error;
          failed = { error, request };
          break;
        }
      }
      if (!failed) {
        this.sql.exec("DELETE FROM jobs WHERE seq = ?", head.seq);
        stats.delivered++;
        continue;
      }
      const { error, request } = failed;
      let reason = error.message;
      if (error.retryable) {
        const step = nextStep(config.policy, {
          attempts: head.attempts + 1,
          elapsedSeconds: Math.max(0, (now - head.received_at) / 1000),
          retryAfter: error.retryAfter,
          random: Math.random(),
        });
        if (step.retry) {
          this.transaction(() => {
            this.sql.exec(
              "UPDATE jobs SET attempts = attempts + 1, next_at = ?, failing_since = coalesce(failing_since, ?), last_error = ? WHERE seq = ?",
              now + step.delaySeconds * 1000,
              now,
              redactEmails(reason),
              head.seq,
            );
            this.count(callName(request), "retried");
          });
          stats.retried++;
          log("warn", "delivery failed, will retry", {
            queue: "vero",
            mailbox: this.ctx.id.toString(),
            messageId: head.message_id,
            attempts: head.attempts + 1,
            delaySeconds: step.delaySeconds,
            reason,
          });
          if (head.failing_since === null) await this.markStalled(head, now, reason, stats);
          return;
        }
        reason = `${step.reason}: ${reason}`;
      }
      if (!(await this.deadLetter(head, job, reason, !error.retryable, config.policy, stats))) return;
      this.count(callName(request), "dead_lettered");
    }
  }

  /**
   * Writes the head job to D1 as a dead letter (its body a valid Vero queue
   * job, so a re-drive lands in this mailbox again), then lets it go. When
   * D1 cannot take it, the job stays and is tried again later: never dropped.
   */
  private async deadLetter(
    head: JobRow,
    job: VeroJob,
    reason: string,
    permanent: boolean,
    policy: RetryPolicy,
    stats: DrainStats,
  ): Promise<boolean> {
    const attempts = head.attempts + 1;
    try {
      if (!this.env.LEDGER) throw new Error(LEDGER_UNBOUND);
      stats.d1Statements++;
      await storeDeadLetters(this.env.LEDGER, [
        {
          // The same id on a second try after a lost answer: the letter is written over, not doubled.
          id: `vero-${this.ctx.id.toString().slice(0, 24)}-${head.seq}`,
          source: "vero",
          body: job,
          reason,
          permanent,
          attempts,
          failedAt: new Date().toISOString(),
        },
      ]);
    } catch (error) {
      const delaySeconds = backoffSeconds(policy, attempts);
      this.sql.exec(
        "UPDATE jobs SET attempts = ?, next_at = ? WHERE seq = ?",
        attempts,
        Date.now() + delaySeconds * 1000,
        head.seq,
      );
      log("error", "could not store a dead letter, will retry", {
        queue: "vero",
        mailbox: this.ctx.id.toString(),
        messageId: head.message_id,
        delaySeconds,
        error: describeError(error),
      });
      return false;
    }
    this.sql.exec("DELETE FROM jobs WHERE seq = ?", head.seq);
    stats.deadLettered++;
    log("error", "delivery failed for good, dead-lettered", {
      queue: "vero",
      mailbox: this.ctx.id.toString(),
      messageId: head.message_id,
      attempts,
      permanent,
      reason,
    });
    return true;
  }

  /** The head job failed for the first time: the mailbox is stalled, and says so in D1 for the alerts. */
  private async markStalled(head: JobRow, now: number, reason: string, stats: DrainStats): Promise<void> {
    this.setState("stalled", true);
    const db = this.env.LEDGER;
    if (!db) return;
    const oldest = this.sql.exec<{ oldest: number }>("SELECT min(received_at) AS oldest FROM jobs").one().oldest;
    try {
      stats.d1Statements++;
      await db
        .prepare(
          `INSERT INTO stalled_mailboxes (mailbox, oldest_at, since, reason, updated_at) VALUES (?1, ?2, ?3, ?4, ?3)
           ON CONFLICT (mailbox) DO UPDATE SET oldest_at = excluded.oldest_at, since = excluded.since,
             reason = excluded.reason, updated_at = excluded.updated_at`,
        )
        .bind(
          this.ctx.id.toString(),
          new Date(oldest ?? head.received_at).toISOString(),
          new Date(now).toISOString(),
          redactEmails(reason),
        )
        .run();
    } catch (error) {
      log("warn", "could not mark the mailbox stalled", {
        mailbox: this.ctx.id.toString(),
        error: describeError(error),
      });
    }
  }

  /** Once no held job is failing, the stalled row goes (tried again on the next drain if D1 is down). */
  private async settleStalled(stats: DrainStats): Promise<void> {
    if (!this.getState<boolean>("stalled")) return;
    if (this.head()?.failing_since != null) return;
    const db = this.env.LEDGER;
    if (db) {
      stats.d1Statements++;
      await db.prepare("DELETE FROM stalled_mailboxes WHERE mailbox = ?1").bind(this.ctx.id.toString()).run();
    }
    this.deleteState("stalled");
  }

  /** A report waits to be sent again, or counts are waiting and the last report is REPORT_EVERY_MS old. */
  private reportDue(): boolean {
    if (this.getState("outbox")) return true;
    return this.hasCounts() && Date.now() >= this.lastReportAt() + REPORT_EVERY_MS;
  }

  /** A report's seq is its time, or one above the previous seq when the clock is behind it. */
  private lastReportAt(): number {
    return this.getState<number>("reportSeq") ?? 0;
  }

  private hasCounts(): boolean {
    return this.sql.exec("SELECT 1 FROM counts LIMIT 1").toArray().length > 0;
  }

  /**
   * Sends the counts gathered since the last report to the mailbox's
   * counter shard. A report is kept (the outbox) until the shard took it,
   * and sent again with the same sequence number, which the shard
   * recognises: counts are neither lost nor doubled.
   */
  private async report(stats: DrainStats): Promise<boolean> {
    let outbox = this.getState<CountReport>("outbox");
    if (!outbox) {
      const rows = this.sql
        .exec<{ bucket: string; name: string; outcome: CounterOutcome; count: number }>(
          "SELECT bucket, name, outcome, count FROM counts",
        )
        .toArray()
        .map((row): CountRow => [row.bucket, "outbound", row.name, row.outcome, row.count]);
      if (rows.length === 0) return true;
      // Above every earlier report's, even after the mailbox emptied and forgot its own count.
      const seq = Math.max(this.lastReportAt() + 1, Date.now());
      outbox = { from: this.ctx.id.toString(), seq, rows };
      const taken = outbox;
      this.transaction(() => {
        this.sql.exec("DELETE FROM counts");
        this.setState("reportSeq", seq);
        this.setState("outbox", taken);
      });
    }
    try {
      const shard = counterShardFor(this.env, outbox.from);
      stats.doRequests++;
      await shard.add(outbox);
      this.deleteState("outbox");
      return true;
    } catch (error) {
      log("warn", "could not report counts; will report them again", {
        mailbox: this.ctx.id.toString(),
        error: describeError(error),
      });
      return false;
    }
  }

  /** At most once a day: the ledger forgets calls past the retention; an empty mailbox frees its storage. */
  private prune(): void {
    const now = Date.now();
    const last = this.getState<number>("prunedAt") ?? 0;
    if (now - last >= DAY_MS) {
      const days = this.getState<MailboxConfig>("config")?.retentionDays;
      if (days !== undefined) this.sql.exec("DELETE FROM calls WHERE done_at < ?", now - days * DAY_MS);
      this.setState("prunedAt", now);
    }
  }

  /** The next alarm: the head's due time, a retry of a failed drain, the next report, the next prune, or none when empty. */
  private async armAlarm(failed: boolean): Promise<void> {
    const now = Date.now();
    const head = this.head();
    const config = this.getState<MailboxConfig>("config");
    let at: number | undefined;
    if (head) at = Math.max(now, head.next_at);
    if (failed || this.getState("outbox") || this.getState("stalled"))
      at = Math.min(at ?? Infinity, now + RETRY_LATER_MS);
    if (this.hasCounts()) at = Math.min(at ?? Infinity, Math.max(now, this.lastReportAt() + REPORT_EVERY_MS));
    if (at === undefined && config) {
      const oldest = this.sql.exec<{ oldest: number | null }>("SELECT min(done_at) AS oldest FROM calls").one().oldest;
      if (oldest !== null)
        at = Math.max(oldest + config.retentionDays * DAY_MS, (this.getState<number>("prunedAt") ?? 0) + DAY_MS);
    }
    if (at !== undefined) {
      await this.ctx.storage.setAlarm(at);
      return;
    }
    // Nothing held, nothing recorded: the object keeps no storage at all.
    await this.ctx.storage.deleteAll();
    this.cached.clear();
    this.sql.exec(SCHEMA);
  }

  // ---- storage helpers ---------------------------------------------------

  private head(): JobRow | undefined {
    return this.sql.exec<JobRow>("SELECT * FROM jobs ORDER BY at, rseq, seq LIMIT 1").toArray()[0];
  }

  private heldCount(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM jobs").one().n;
  }

  private holds(messageId: string): boolean {
    return this.sql.exec("SELECT 1 FROM jobs WHERE message_id = ? LIMIT 1", messageId).toArray().length > 0;
  }

  private isRecorded(messageId: string, call: string): boolean {
    return this.sql.exec("SELECT 1 FROM calls WHERE message_id = ? AND call = ?", messageId, call).toArray().length > 0;
  }

  /** Every call of the job is in the ledger: the event was delivered. */
  private isDelivered(job: VeroJob): boolean {
    return job.requests.every((request, index) =>
      this.isRecorded(job.messageId, callKey((job.step ?? 0) + index, request.method, request.path)),
    );
  }

  private record(messageId: string, call: string, status: number, at: number): void {
    this.sql.exec(
      "INSERT INTO calls (message_id, call, status, done_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
      messageId,
      call,
      status,
      at,
    );
  }

  private count(name: string, outcome: CounterOutcome): void {
    this.sql.exec(
      `INSERT INTO counts (bucket, name, outcome, count) VALUES (?, ?, ?, 1)
       ON CONFLICT (bucket, name, outcome) DO UPDATE SET count = count + 1`,
      bucketOf(new Date()),
      name,
      outcome,
    );
  }

  /** transactionSync, and a cache that forgets what a rolled-back transaction wrote. */
  private transaction(writes: () => void): void {
    try {
      this.ctx.storage.transactionSync(writes);
    } catch (error) {
      this.cached.clear();
      throw error;
    }
  }

  private getState<T>(key: string): T | undefined {
    if (!this.cached.has(key)) {
      const row = this.sql.exec<{ value: string }>("SELECT value FROM state WHERE key = ?", key).toArray()[0];
      this.cached.set(key, row ? JSON.parse(row.value) : undefined);
    }
    return this.cached.get(key) as T | undefined;
  }

  private setState(key: string, value: unknown): void {
    this.sql.exec(
      "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      JSON.stringify(value),
    );
    this.cached.set(key, value);
  }

  private deleteState(key: string): void {
    this.sql.exec("DELETE FROM state WHERE key = ?", key);
    this.cached.set(key, undefined);
  }
}
