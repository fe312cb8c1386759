/**
 * The mailbox of one Vero user: a SQLite-backed Durable Object that holds
 * the user's jobs and delivers them one Vero call at a time, in order. It
 * is single-threaded, so the user's order and exactly-once are held here;
 * different users' mailboxes run side by side.
 *
 * - `accept` commits jobs in one transaction, skipping a messageId it holds
 *   or whose calls its ledger has all recorded, and arms the alarm. When
 *   the mailbox holds nothing and the jobs need no settling (they did not
 *   come from the queue), it delivers them itself first (`deliverNow`):
 *   a job Vero accepts then costs its ledger rows and no other write.
 * - Each job gets an id of its own when it is accepted (`job_id`, kept by
 *   its continuations), which names its dead letter: letters never
 *   overwrite each other, however often the mailbox empties.
 * - The alarm delivers the head job's calls; each call Vero accepts is
 *   recorded in the ledger (`calls`) in the transaction that marks it done.
 *   A retryable failure (a call that could not be recorded included) is an
 *   attempt: it holds back only this user, retried on the alarm by the retry
 *   schedule, whose horizon counts from the job's first failure. A permanent
 *   failure, or the end of the horizon, becomes a dead letter holding only
 *   the calls Vero has not accepted: kept in the mailbox (`letters`) in the
 *   transaction that lets the job go, then moved to D1, so the user never
 *   waits for D1.
 * - The alarm wakes when the head is due; side work that failed (the
 *   stalled row, letters or counts not yet in D1) adds a wake at most every
 *   RETRY_LATER_MS.
 * - A delivery's ledger row is also its count (and its job's latency):
 *   the deliveries since the last report, with the rarer retries and dead
 *   letters counted on their own, are reported to a counter shard (see
 *   counter-shard.ts) COUNTS_REPORT_SECONDS after the first of them, so a
 *   busy user costs one report a minute, not one per event; the shard
 *   writes them to D1 a few seconds later.
 */

import { DurableObject } from "cloudflare:workers";
import type { CountReport, CountRow } from "../delivery/counter-shard.ts";
import { counterShardFor } from "../delivery/counter-shard.ts";
import { bucketOf, type CountedOutcome } from "../delivery/counters.ts";
import { type DeadLetter, storeDeadLetters } from "../delivery/dead-letters.ts";
import { binOf, LATENCY } from "../delivery/latency.ts";
import { decide, logDeadLettered } from "../delivery/retry-or-dead-letter.ts";
import type { RetryPolicy } from "../delivery/retry-schedule.ts";
import { LEDGER_UNBOUND } from "../shared/bindings.ts";
import type { Env } from "../shared/env.ts";
import { DeliveryError } from "../shared/errors.ts";
import { configureLogs, describeError, log, logSampled, redactEmails } from "../shared/log.ts";
import {
  DEFAULT_COUNTS_REPORT_SECONDS,
  describeUnready,
  settingsFor,
  type VeroCredential,
} from "../shared/settings.ts";
import { callKey, isLedgerKey, type VeroJob } from "./job.ts";
import type { VeroRequest } from "./map.ts";
import { sendToVero, type VeroTarget } from "./vero.ts";

/** What a mailbox delivers with: the settings of the Worker that handed it the jobs. */
export interface MailboxConfig {
  /** Which Vero project the mailbox's user belongs to; never the credential, which is not stored. */
  account: VeroAccount;
  policy: RetryPolicy;
  retentionDays: number;
  /** VERO_TRACK_CONCURRENCY: track calls sent side by side between two calls that change the user (1: strict order). */
  trackConcurrency?: number;
  /** LOG_SAMPLE_RATE: the share of messageIds whose success lines are logged, as in the Worker. */
  logSampleRate: number;
  /** COUNTS_REPORT_SECONDS in ms (REPORT_EVERY_MS when absent: handed over by an earlier version). */
  reportEveryMs?: number;
}

/** Where the mailbox's user lives at Vero: VERO_API_URL and VERO_ACCOUNT. */
export type VeroAccount = Pick<VeroTarget, "veroApiUrl" | "veroAccount">;

/** What mailboxes stored before they were named without the credential: the target held it. */
interface LegacyConfig extends Omit<MailboxConfig, "account"> {
  target: VeroTarget;
}

/** A job for a mailbox, with the calls the previous (D1) ledger recorded for it, if any. */
export interface Letter {
  job: VeroJob;
  recorded?: string[];
}

export interface Accepted {
  /** Jobs taken: delivered at once, or stored. */
  accepted: number;
  skipped: number;
  /** Of those accepted, the jobs delivered within the call (the mailbox held nothing before them). */
  delivered: number;
  veroCalls: number;
  /** Alarms set: Durable Objects keep an alarm in the object's storage, so each is counted as a row written. */
  alarmsSet: number;
  /** The mailbox storage rows the hand-over read and wrote (the runtime's cursor counters), for the logs. */
  doRowsRead: number;
  doRowsWritten: number;
}

const TRACK_CALL = "POST /events/track";

/** The name a call is counted under, e.g. "POST /events/track". */
export const callName = (request: Pick<VeroRequest, "method" | "path">) => `${request.method} ${request.path}`;

/**
 * The subrequests to Vero one alarm run makes at most, then it continues in
 * a new run: the Workers Free plan allows 50 per invocation, and the run's
 * own D1 statements and counter report take a few more. A deletion counts
 * two (a lost answer is asked again at once).
 */
export const CALLS_PER_DRAIN = 40;
/**
 * How soon side work that failed (a drain that threw, the stalled row,
 * letters or counts not yet in D1) is tried again: each wake is a billed
 * request, so a mailbox whose D1 is down wakes at most this often.
 */
export const RETRY_LATER_MS = 5 * 60_000;
/**
 * A failing head is listed in D1's stalled_mailboxes once its next try
 * comes more than this after its first failure: a failure that the next
 * try or two resolve (a blip) writes nothing to D1, and a wake made at
 * once to write the row would be most of a lone retry's cost.
 */
export const STALLED_AFTER_MS = 30_000;
/**
 * How long a job handed over by the Vero queue's consumer waits in the
 * mailbox before it may be sent, so that an older job of the same user
 * that another consumer invocation (run at the same time) is handing over
 * sorts in before it. Jobs behind a waiting head do not wait again.
 */
export const QUEUE_SETTLE_MS = 1_000;
/**
 * The most jobs a mailbox holds: beyond it `accept` refuses (the queue or
 * the sender retries), so one user's flood cannot grow a mailbox without
 * bound. Each job is at most a queue message (128 KB), so a full mailbox
 * stays far below a Durable Object's 10 GB.
 */
export const MAILBOX_MAX_JOBS = 10_000;
/** Without the LEDGER binding, letters wait in the mailbox; it looks for the binding this often. */
export const LEDGER_WAIT_MS = 3_600_000;
/**
 * How long a mailbox's counts wait for their report, unless
 * COUNTS_REPORT_SECONDS says otherwise: a report costs an alarm, a shard
 * call and some eight rows written, so it is made once per minute of
 * deliveries, not once per event.
 */
export const REPORT_EVERY_MS = DEFAULT_COUNTS_REPORT_SECONDS * 1000;
/**
 * How long `accept` goes on delivering jobs itself when the mailbox held
 * nothing (a call under way is finished): the caller waits for it, so the
 * rest is stored and delivered by the alarm.
 */
export const DELIVER_NOW_MS = 1_000;
const DAY_MS = 86_400_000;

/**
 * A job's row, keyed by its place in the user's order: the route's receipt
 * (`at`), the event's place in its request (`rseq`), then arrival (`seq`).
 * Without a rowid, a job stored and deleted writes two rows, where a rowid
 * table with an index on the order and AUTOINCREMENT wrote five.
 */
const JOBS_COLUMNS = `
  at INTEGER NOT NULL,
  rseq INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  job_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL DEFAULT 0,
  failing_since INTEGER,
  last_error TEXT,
  PRIMARY KEY (at, rseq, seq)
`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (${JOBS_COLUMNS}) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS calls (
  message_id TEXT NOT NULL,
  call TEXT NOT NULL,
  status INTEGER NOT NULL,
  done_at INTEGER NOT NULL,
  name TEXT,
  latency_ms INTEGER,
  PRIMARY KEY (message_id, call)
) WITHOUT ROWID;
DROP INDEX IF EXISTS calls_done_at;
CREATE TABLE IF NOT EXISTS counts (
  bucket TEXT NOT NULL,
  name TEXT NOT NULL,
  outcome TEXT NOT NULL,
  count INTEGER NOT NULL,
  first_at INTEGER,
  PRIMARY KEY (bucket, name, outcome)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS letters (id TEXT PRIMARY KEY, letter TEXT NOT NULL) WITHOUT ROWID;
`;

/**
 * What mailboxes created by earlier versions lack, each found by a query
 * that fails on them (`fails`) or succeeds only on them (`holds`): jobs
 * keyed by their order (a rowid table before, perhaps without job ids; the
 * jobs are copied, and the ledger rows of a job without a messageId move
 * from its old name, by its rowid, to its job id), and the ledger's count
 * columns, `name` on a call this mailbox made (counted as delivered; a call
 * taken over from another ledger has none) and `latency_ms` on a job's
 * last call, and the counts' `first_at`.
 */
type Upgrade = ({ fails: string } | { holds: string }) & { fix: string[] };
const UPGRADES: Upgrade[] = [
  {
    fails: "SELECT job_id FROM jobs LIMIT 0",
    fix: [
      "ALTER TABLE jobs ADD COLUMN job_id TEXT",
      "UPDATE jobs SET job_id = lower(hex(randomblob(16))) WHERE job_id IS NULL",
    ],
  },
  {
    holds: "SELECT rowid FROM jobs LIMIT 0",
    fix: [
      "ALTER TABLE jobs RENAME TO jobs_before",
      `CREATE TABLE jobs (${JOBS_COLUMNS}) WITHOUT ROWID`,
      `UPDATE calls SET message_id = (SELECT j.message_id || '@' || j.job_id FROM jobs_before j
         WHERE calls.message_id = j.message_id || '@' || j.rowid)
       WHERE message_id IN (SELECT message_id || '@' || rowid FROM jobs_before)`,
      `INSERT INTO jobs SELECT at, rseq, rowid, job_id, message_id, body,
         received_at, attempts, next_at, failing_since, last_error FROM jobs_before`,
      "DROP TABLE jobs_before",
    ],
  },
  {
    fails: "SELECT name, latency_ms FROM calls LIMIT 0",
    fix: ["ALTER TABLE calls ADD COLUMN name TEXT", "ALTER TABLE calls ADD COLUMN latency_ms INTEGER"],
  },
  { fails: "SELECT first_at FROM counts LIMIT 0", fix: ["ALTER TABLE counts ADD COLUMN first_at INTEGER"] },
];

const succeeds = (sql: SqlStorage, query: string) => {
  try {
    sql.exec(query);
    return true;
  } catch {
    return false;
  }
};

/** Brings a mailbox's tables from an earlier version's layout to this one's, in one transaction. */
export function upgrade(storage: DurableObjectStorage): void {
  const sql = storage.sql;
  const due = UPGRADES.filter((step) => ("holds" in step ? succeeds(sql, step.holds) : !succeeds(sql, step.fails)));
  if (due.length === 0) return;
  storage.transactionSync(() => {
    for (const { fix } of due) for (const statement of fix) sql.exec(statement);
  });
}

/** A job's place in the user's order: its row's key. */
interface JobKey {
  at: number;
  rseq: number;
  seq: number;
}

/** The WHERE clause for one job's row, and its arguments. */
const BY_KEY = "at = ? AND rseq = ? AND seq = ?";
const keyArgs = ({ at, rseq, seq }: JobKey) => [at, rseq, seq] as const;

/** What the mailbox last wrote to D1's stalled_mailboxes: which episode (capped, failing since, backlog). */
interface StalledRow {
  key: string;
}

interface JobRow extends JobKey {
  job_id: string;
  message_id: string;
  body: string;
  received_at: number;
  attempts: number;
  next_at: number;
  failing_since: number | null;
  last_error: string | null;
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
  /** Each kept in the object's storage: the bench counts it as a row written. */
  alarmsSet: number;
  /** Count rows in the report sent to the counter shard: each is a row the shard writes. */
  reportedRows: number;
}

/**
 * The mailbox's name: the Vero account (API URL and the optional
 * VERO_ACCOUNT) and the user, never the credential, so that rotating it
 * keeps each user's order and ledger. Two projects' users of the same id
 * never wait for each other.
 */
export function mailboxName(account: VeroAccount, user: string): string {
  return JSON.stringify([account.veroApiUrl, account.veroAccount ?? null, user]);
}

/** What `deliverNow` left to store (the failed job first), and the jobs it found delivered already. */
interface Delivered {
  rest: Letter[];
  skipped: number;
  failure?: { error: DeliveryError; request: VeroRequest };
}

/** An alarm set at `alarm` (null for none) fires by `at`: no need to set one for `at`. */
const firesBy = (alarm: number | null, at: number): boolean => alarm !== null && alarm <= at;

const emptyStats = (): DrainStats => ({
  delivered: 0,
  retried: 0,
  deadLettered: 0,
  skippedCalls: 0,
  veroCalls: 0,
  d1Statements: 0,
  doRequests: 0,
  alarmsSet: 0,
  reportedRows: 0,
});

/** Vero has the call, the ledger does not: an attempt like any other, retried on the schedule. */
const notRecorded = (request: VeroRequest, error: unknown) =>
  new DeliveryError(
    "vero",
    `Vero accepted ${callName(request)} but the mailbox could not record it (${describeError(error)}); a retry makes it again`,
    { retryable: true, cause: error },
  );

/** The ledger's rows, as handed from one mailbox to another: messageId, call, status, time. */
export type CallRow = [string, string, number, number];

/** Ledger rows handed over in one call: well within an RPC's size limit. */
const HANDOVER_CALLS = 2_000;
/** Jobs handed over in one call: each at most a queue message (128 KB). */
const HANDOVER_JOBS = 100;

/** The name a job's calls are recorded under: its messageId, or for an event without one, its job. */
const ledgerIdOf = (head: Pick<JobRow, "message_id" | "job_id">) =>
  isLedgerKey(head.message_id) ? head.message_id : `${head.message_id}@${head.job_id}`;

export class Mailbox extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /**
   * The `state` table as this object last read or wrote it (undefined for
   * a key it found absent): only this object writes it, and most runs read
   * the same keys several times.
   */
  private readonly cached = new Map<string, unknown>();
  /**
   * The head job's backoff, also kept in memory: when storage refuses the
   * write that counts an attempt, Vero still gets no more calls than the
   * schedule allows.
   */
  private pause: { jobId: string; until: number } | undefined;
  /** `deliverNow` is making calls: other hand-overs store their jobs behind, and the alarm waits. */
  private sending = false;
  /**
   * The alarm set, null for none, as far as this instance set it (or
   * created the database, which then has none): undefined when not known
   * (an instance of an existing mailbox, an alarm running, a failed write),
   * and then read from storage.
   */
  private alarmAt: number | null | undefined;
  /** How many jobs are stored: counted once, kept as jobs are stored, counted again after one is deleted. */
  private heldJobs: number | undefined;
  /** Settings a hand-over brought that differ from those stored: written by the next transaction, not a commit of their own. */
  private unsavedConfig: MailboxConfig | undefined;
  /**
   * The Vero credential the last hand-over carried, from the settings of
   * the Worker that made it: in memory only, never stored. After a restart
   * the mailbox reads its own settings (the same Worker's) instead.
   */
  private handedCredential: VeroCredential | undefined;
  /** The messageIds the alarm's run delivered: its line is sampled by them. */
  private drained: string[] = [];
  /** The last job key's seq handed out (see nextSeq). */
  private lastSeq: number | undefined;
  /** The first unreported delivery's time, null for none, undefined until read (see firstUnreported). */
  private unreportedSince: number | null | undefined;
  /** The last delivery's time (see stamp). */
  private lastStamp: number | undefined;
  /** The cursors of this run's statements: their row counters are what Durable Object storage bills. */
  private cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = [];

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    const created = this.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").toArray().length === 0;
    this.sql.exec(SCHEMA);
    if (created) this.alarmAt = null;
    else upgrade(ctx.storage);
  }

  /**
   * Commits `letters` (the user's jobs, in arrival order) in one
   * transaction. The RPC answer leaves the object only once the write is
   * durable (the output gate), so a caller that acks on it loses nothing.
   */
  async accept(letters: Letter[], config: MailboxConfig, credential?: VeroCredential, settleMs = 0): Promise<Accepted> {
    if (credential) this.handedCredential = credential;
    configureLogs({ sampleRate: config.logSampleRate });
    const now = Date.now();
    const held = this.heldCount();
    if (held + letters.length > MAILBOX_MAX_JOBS) {
      if (this.getState("cappedAt") === undefined) this.setState("cappedAt", now);
      // The alarm writes the stalled row that raises the alert.
      const alarm = await this.alarmTime();
      if (!firesBy(alarm, now)) await this.setAlarm(now);
      log("error", "mailbox full: jobs refused", {
        mailbox: this.ctx.id.toString(),
        held,
        refused: letters.length,
        cap: MAILBOX_MAX_JOBS,
      });
      throw new Error(`the user's mailbox holds ${held} jobs, at its cap of ${MAILBOX_MAX_JOBS}; retry later`);
    }
    // Written only when it changed: a row written per accept would be most of the mailbox's storage writes.
    if (JSON.stringify(this.getState("config")) !== JSON.stringify(config)) this.unsavedConfig = config;
    const stats = emptyStats();
    // Jobs that may overtake nothing are delivered at once, without being stored (see deliverNow).
    // Several tracks with VERO_TRACK_CONCURRENCY go side by side from the alarm instead.
    const sideBySide = (config.trackConcurrency ?? 1) > 1 && letters.length > 1;
    const direct: Delivered =
      settleMs === 0 && held === 0 && !this.sending && !sideBySide
        ? await this.deliverNow(letters, config, stats)
        : { rest: letters, skipped: 0 };
    let accepted = stats.delivered;
    let skipped = direct.skipped;
    let failedKey: JobKey | undefined;
    this.transaction(() => {
      for (const [index, { job, recorded = [] }] of direct.rest.entries()) {
        for (const call of recorded) this.record(job.messageId, call, 200, now);
        if (isLedgerKey(job.messageId) && (this.holds(job.messageId) || this.isDelivered(job))) {
          skipped++;
          continue;
        }
        // A re-driven letter keeps the id it was given here the first time.
        const jobId = job.id ?? crypto.randomUUID();
        const key: JobKey = { at: job.at ?? now, rseq: job.seq ?? 0, seq: this.nextSeq() };
        this.exec(
          `INSERT INTO jobs (at, rseq, seq, job_id, message_id, body, received_at, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          key.at,
          key.rseq,
          key.seq,
          jobId,
          job.messageId,
          JSON.stringify({ ...job, id: jobId }),
          now,
          now + settleMs,
        );
        if (this.heldJobs !== undefined) this.heldJobs++;
        if (index === 0 && direct.failure) failedKey = key;
        accepted++;
      }
    });
    // The job whose call just failed is stored with that attempt counted, as if the alarm had made it.
    const failedHead =
      failedKey === undefined
        ? undefined
        : this.exec<JobRow>(`SELECT * FROM jobs WHERE ${BY_KEY}`, ...keyArgs(failedKey)).one();
    if (direct.failure && failedHead)
      this.failed(failedHead, JSON.parse(failedHead.body) as VeroJob, direct.failure, config, Date.now(), stats);
    // Jobs delivered at once and none stored: an alarm known to this instance was set after (or for) their
    // report, so it stays right; when none is known, wakeFor reads it.
    const unchanged = direct.rest.length === 0 && this.alarmAt !== undefined;
    // A letter or a stalled row for D1 wakes the alarm at once; a blip's retry is its next wake, which also reports its count.
    const woken = unchanged ? 0 : await this.wakeFor(now, direct.failure !== undefined && this.stalledRowStale());
    const alarmsSet = stats.alarmsSet + woken;
    return {
      accepted,
      skipped,
      delivered: stats.delivered,
      veroCalls: stats.veroCalls,
      alarmsSet,
      ...this.takeRows(),
    };
  }

  /**
   * The mailbox held nothing, so `letters` are next in the user's order:
   * their calls are made now, within the hand-over, and a job Vero accepted
   * is never stored (its ledger rows are its one write). Stops at the first
   * failure, after DELIVER_NOW_MS, or when the call budget is spent; what is
   * left (`rest`, the failed job first) is stored by `accept`. While it
   * runs, other hand-overs store their jobs and the alarm waits (`sending`),
   * so nothing overtakes these jobs. Jobs from the queue have a settle
   * window and never come here; nor does a job without a messageId, whose
   * ledger name needs its stored row.
   */
  private async deliverNow(letters: Letter[], config: MailboxConfig, stats: DrainStats): Promise<Delivered> {
    this.sending = true;
    const started = Date.now();
    let calls = 0;
    let skipped = 0;
    try {
      for (const [index, { job, recorded = [] }] of letters.entries()) {
        const rest = letters.slice(index);
        if (!isLedgerKey(job.messageId) || Date.now() - started >= DELIVER_NOW_MS) return { rest, skipped };
        if (recorded.length > 0)
          this.transaction(() => {
            for (const call of recorded) this.record(job.messageId, call, 200, started);
          });
        const done = this.recordedCalls(job.messageId);
        if (this.isDelivered(job, done)) {
          skipped++;
          continue;
        }
        for (const [step, request] of job.requests.entries()) {
          const call = callKey((job.step ?? 0) + step, request.method, request.path);
          if (done.has(call)) continue;
          const cost = request.path === "/users/delete" ? 2 : 1;
          if (calls + cost > CALLS_PER_DRAIN) return { rest, skipped };
          calls += cost;
          stats.veroCalls++;
          let status: number;
          try {
            const target = { veroApiUrl: config.account.veroApiUrl, veroCredential: this.credential() };
            [status = 200] = await sendToVero(target, [request], job.messageId);
          } catch (error) {
            if (!(error instanceof DeliveryError)) throw error;
            return { rest, skipped, failure: { error, request } };
          }
          const finished = step === job.requests.length - 1 ? job : undefined;
          try {
            let arming: Promise<void> | undefined;
            this.transaction(() => {
              const head = { received_at: started };
              if (this.recordDelivered(job.messageId, call, status, request, finished, head))
                arming = this.armReportWithin(stats);
            });
            await arming;
          } catch (error) {
            // Whether the report's alarm was set is no longer known.
            this.alarmAt = undefined;
            return { rest, skipped, failure: { error: notRecorded(request, error), request } };
          }
        }
        stats.delivered++;
      }
      return { rest: [], skipped };
    } finally {
      this.sending = false;
    }
  }

  /**
   * Sets the alarm for what the mailbox holds (its head's due time, letters
   * to move, counts to report), or `atOnce`, never later than one already
   * set; returns how many alarms it set.
   */
  private async wakeFor(now: number, atOnce = false): Promise<number> {
    const head = this.head();
    let due: number | undefined = head ? Math.max(now, this.dueAt(head)) : undefined;
    if (atOnce) due = now;
    if (this.exec("SELECT 1 FROM letters LIMIT 1").toArray().length > 0) due = now;
    const report = this.reportDueAt();
    if (report !== undefined) due = Math.min(due ?? Infinity, Math.max(now, report));
    if (due === undefined) return 0;
    const alarm = await this.alarmTime();
    if (firesBy(alarm, due)) return 0;
    await this.setAlarm(due);
    return 1;
  }

  /**
   * Takes over the ledger of a mailbox named the old way (by credential)
   * for the same user, so that re-sent messageIds stay skipped.
   */
  async adopt(calls: CallRow[]): Promise<void> {
    this.transaction(() => {
      for (const [messageId, call, status, doneAt] of calls) this.record(messageId, call, status, doneAt);
    });
  }

  /** Never throws: Cloudflare retries a throwing alarm only a few times. */
  override async alarm(): Promise<void> {
    const sampleRate = this.getState<MailboxConfig>("config")?.logSampleRate;
    if (sampleRate !== undefined) configureLogs({ sampleRate });
    const stats = emptyStats();
    const woke = Date.now();
    this.drained = [];
    // This run's own alarm is spent: what is set next is armAlarm's (or a hand-over's) to say.
    this.alarmAt = undefined;
    // A hand-over is delivering at once: the jobs stored meanwhile wait for it (see deliverNow).
    if (this.sending) {
      await this.setAlarm(Date.now() + DELIVER_NOW_MS);
      return;
    }
    let failure: string | undefined;
    try {
      await this.handOverIfLegacy(stats);
      await this.drain(stats);
    } catch (error) {
      failure = describeError(error);
    }
    try {
      if (!(await this.storeLetters(stats))) failure ??= "dead letters not yet stored in D1";
      if (!(await this.syncStalled(stats))) failure ??= "stalled row not yet written to D1";
      if (this.reportDue(woke) && !(await this.report(stats))) failure ??= "counts not reported";
      this.prune();
      await this.armAlarm(failure !== undefined, stats);
    } catch (error) {
      failure ??= describeError(error);
      await this.setAlarm(Date.now() + RETRY_LATER_MS).catch(() => undefined);
    }
    const held = this.heldCount();
    const clean = failure === undefined && stats.retried + stats.deadLettered === 0;
    const line = {
      mailbox: this.ctx.id.toString(),
      ...stats,
      ...this.takeRows(),
      held,
      ...(failure === undefined ? {} : { error: failure }),
    };
    // A clean run is a success line, sampled by the messageIds it delivered (a run that delivered none: at rate 1 only).
    if (clean) logSampled(this.drained.length > 0 ? this.drained : [null], "mailbox drain", line);
    else log("warn", "mailbox drain", line);
  }

  /**
   * A mailbox named by the credential (before the upgrade) hands its jobs,
   * in order, and its ledger to the user's mailbox named by account, then
   * forgets them and its stored configuration, credential included. Its
   * counts are still reported, its stalled row cleared, and then it wipes
   * its storage like any empty mailbox.
   */
  private async handOverIfLegacy(stats: DrainStats): Promise<void> {
    const legacy = this.getState<MailboxConfig | LegacyConfig>("config");
    if (!legacy || !("target" in legacy)) return;
    const account: VeroAccount = {
      veroApiUrl: legacy.target.veroApiUrl,
      ...(settingsFor(this.env).consumers.vero.ready
        ? { veroAccount: (settingsFor(this.env).consumers.vero as { settings: VeroTarget }).settings.veroAccount }
        : {}),
    };
    const config: MailboxConfig = {
      account,
      policy: legacy.policy,
      retentionDays: legacy.retentionDays,
      logSampleRate: legacy.logSampleRate,
    };
    const rows = this.exec<JobRow>("SELECT * FROM jobs ORDER BY at, rseq, seq").toArray();
    const first = rows[0];
    if (first) {
      const user = (JSON.parse(first.body) as VeroJob).user;
      const namespace = this.env.MAILBOX as DurableObjectNamespace<Mailbox> | undefined;
      if (!namespace) throw new Error("the MAILBOX binding is gone: the jobs wait");
      const heir = namespace.get(namespace.idFromName(mailboxName(account, user)));
      const calls = this.sql
        .exec<{ message_id: string; call: string; status: number; done_at: number }>("SELECT * FROM calls")
        .toArray()
        .map((row): CallRow => [row.message_id, row.call, row.status, row.done_at]);
      for (let start = 0; start < calls.length; start += HANDOVER_CALLS) {
        stats.doRequests++;
        await heir.adopt(calls.slice(start, start + HANDOVER_CALLS));
      }
      for (let start = 0; start < rows.length; start += HANDOVER_JOBS) {
        const chunk = rows.slice(start, start + HANDOVER_JOBS);
        stats.doRequests++;
        await heir.accept(
          chunk.map((row) => ({ job: { ...(JSON.parse(row.body) as VeroJob), id: row.job_id } })),
          config,
        );
        this.transaction(() => {
          for (const row of chunk) this.deleteJob(row);
        });
      }
      this.exec("DELETE FROM calls");
    }
    // Without jobs the user is unknown: the ledger stays here for its retention, the credential does not.
    this.setState("config", config);
    log("info", "mailbox named by credential handed over", {
      mailbox: this.ctx.id.toString(),
      jobs: rows.length,
    });
  }

  /** The credential to call Vero with, from the Worker's settings; never stored. */
  private credential(): VeroCredential {
    if (this.handedCredential) return this.handedCredential;
    const vero = settingsFor(this.env).consumers.vero;
    if (!vero.ready) throw new Error(describeUnready("the Vero consumer", vero));
    return vero.settings.veroCredential;
  }

  /** Delivers due jobs in order until the mailbox is empty, its head waits, or the drain's call budget is spent. */
  private async drain(stats: DrainStats): Promise<void> {
    const config = this.getState<MailboxConfig>("config");
    if (!config) return;
    let calls = 0;
    for (;;) {
      const head = this.head();
      const now = Date.now();
      if (!head || this.dueAt(head) > now) return;
      const together = await this.sendTracks(config, CALLS_PER_DRAIN - calls, stats);
      if (together > 0) {
        calls += together;
        continue;
      }
      const job = JSON.parse(head.body) as VeroJob;
      const ledgerId = ledgerIdOf(head);
      const done = this.recordedCalls(ledgerId);
      let failed: { error: DeliveryError; request: VeroRequest } | undefined;
      for (const [index, request] of job.requests.entries()) {
        const call = callKey((job.step ?? 0) + index, request.method, request.path);
        if (done.has(call)) {
          stats.skippedCalls++;
          continue;
        }
        const last = index === job.requests.length - 1;
        const cost = request.path === "/users/delete" ? 2 : 1;
        if (calls + cost > CALLS_PER_DRAIN) return;
        calls += cost;
        stats.veroCalls++;
        let status: number;
        try {
          const target = { veroApiUrl: config.account.veroApiUrl, veroCredential: this.credential() };
          [status = 200] = await sendToVero(target, [request], isLedgerKey(ledgerId) ? ledgerId : null);
        } catch (error) {
          // Anything but a DeliveryError is a bug: the drain stops and is tried again later.
          if (!(error instanceof DeliveryError)) throw error;
          failed = { error, request };
          break;
        }
        try {
          this.transaction(() => this.recordDelivered(ledgerId, call, status, request, last ? job : undefined, head));
        } catch (error) {
          failed = { error: notRecorded(request, error), request };
          break;
        }
      }
      if (!failed) {
        this.deleteJob(head);
        stats.delivered++;
        this.drained.push(head.message_id);
        continue;
      }
      if (!this.failed(head, job, failed, config, now, stats)) return;
    }
  }

  /**
   * The head's attempt failed: retried on the schedule (false: the drain
   * stops, the head waits), or let go as a dead letter (true: go on).
   */
  private failed(
    head: JobRow,
    job: VeroJob,
    { error, request }: { error: DeliveryError; request: VeroRequest },
    config: MailboxConfig,
    now: number,
    stats: DrainStats,
  ): boolean {
    const reason = redactEmails(error.message);
    const decision = decide(
      config.policy,
      { retryable: error.retryable, reason, retryAfter: error.retryAfter },
      // The horizon counts from the first failure: waiting behind a healthy backlog never ends a job.
      { attempts: head.attempts + 1, elapsedSeconds: Math.max(0, (now - (head.failing_since ?? now)) / 1000) },
      { queue: "vero", mailbox: this.ctx.id.toString(), messageId: head.message_id },
    );
    if (decision.retry) {
      const until = now + decision.delaySeconds * 1000;
      this.pause = { jobId: head.job_id, until };
      stats.retried++;
      this.transaction(() => {
        this.exec(
          `UPDATE jobs SET attempts = attempts + 1, next_at = ?, failing_since = coalesce(failing_since, ?), last_error = ?
           WHERE ${BY_KEY}`,
          until,
          now,
          reason,
          ...keyArgs(head),
        );
        this.count(callName(request), "retried");
      });
      // Stored: the row is the one record (a test or an operator may move it).
      this.pause = undefined;
      return false;
    }
    this.deadLetter(head, job, decision.reason, decision.permanent, request, stats);
    return true;
  }

  /**
   * VERO_TRACK_CONCURRENCY above 1: the due jobs at the head that are each
   * one events/track call, up to that many, are sent side by side (they may
   * reach Vero in any order among themselves); a job that changes the user
   * ends the run, so it never overtakes a track nor is overtaken. Returns
   * how many jobs it took, 0 when the head is not such a job.
   */
  private async sendTracks(config: MailboxConfig, budget: number, stats: DrainStats): Promise<number> {
    const most = Math.min(config.trackConcurrency ?? 1, budget);
    if (most < 2) return 0;
    const now = Date.now();
    const run: { head: JobRow; job: VeroJob; request: VeroRequest; call: string }[] = [];
    for (const head of this.exec<JobRow>("SELECT * FROM jobs ORDER BY at, rseq, seq LIMIT ?", most)) {
      const job = JSON.parse(head.body) as VeroJob;
      const [request] = job.requests;
      if (this.dueAt(head) > now || job.requests.length !== 1 || !request || callName(request) !== TRACK_CALL) break;
      const call = callKey(job.step ?? 0, request.method, request.path);
      if (this.recordedCalls(ledgerIdOf(head)).has(call)) break;
      run.push({ head, job, request, call });
    }
    if (run.length < 2) return 0;
    const veroCredential = this.credential();
    stats.veroCalls += run.length;
    const results = await Promise.allSettled(
      run.map(({ head, request }) =>
        sendToVero({ veroApiUrl: config.account.veroApiUrl, veroCredential }, [request], ledgerIdOf(head)),
      ),
    );
    for (const [index, { head, job, request, call }] of run.entries()) {
      const result = results[index];
      if (result?.status === "fulfilled") {
        const [status = 200] = result.value;
        this.transaction(() => {
          this.recordDelivered(ledgerIdOf(head), call, status, request, job, head);
          this.deleteJob(head);
        });
        stats.delivered++;
        this.drained.push(head.message_id);
        continue;
      }
      const error = result?.reason;
      if (!(error instanceof DeliveryError)) throw error;
      this.failed(head, job, { error, request }, config, Date.now(), stats);
    }
    return run.length;
  }

  /**
   * Lets the head job go as a dead letter, kept in the mailbox until it is
   * in D1 (storeLetters). The letter holds only the calls Vero has not
   * accepted (a continuation: `step` says where it starts), under the job's
   * own id, so a re-drive repeats nothing and no letter overwrites another.
   */
  private deadLetter(
    head: JobRow,
    job: VeroJob,
    reason: string,
    permanent: boolean,
    request: VeroRequest,
    stats: DrainStats,
  ): void {
    const done = this.recordedCalls(ledgerIdOf(head));
    const first = job.requests.findIndex(
      (call, index) => !done.has(callKey((job.step ?? 0) + index, call.method, call.path)),
    );
    const from = first < 0 ? job.requests.length : first;
    const attempts = head.attempts + 1;
    const letter: DeadLetter = {
      id: `vero-${head.job_id}`,
      source: "vero",
      body: { ...job, id: head.job_id, requests: job.requests.slice(from), step: (job.step ?? 0) + from },
      reason,
      permanent,
      attempts,
      failedAt: new Date().toISOString(),
    };
    this.transaction(() => {
      this.exec(
        "INSERT INTO letters (id, letter) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET letter = excluded.letter",
        letter.id,
        JSON.stringify(letter),
      );
      this.deleteJob(head);
      this.count(callName(request), "dead_lettered");
    });
    stats.deadLettered++;
    logDeadLettered(
      { queue: "vero", mailbox: this.ctx.id.toString(), messageId: head.message_id, letter: letter.id },
      letter,
    );
  }

  /** Moves the letters the mailbox keeps to D1; false while they wait (D1 down or not bound). */
  private async storeLetters(stats: DrainStats): Promise<boolean> {
    const rows = this.exec<{ id: string; letter: string }>("SELECT id, letter FROM letters LIMIT 50").toArray();
    if (rows.length === 0) return true;
    // Without the binding they wait; armAlarm looks for it again every LEDGER_WAIT_MS.
    const db = this.env.LEDGER;
    if (!db) {
      log("error", "dead letters wait in the mailbox: LEDGER not bound", {
        queue: "vero",
        mailbox: this.ctx.id.toString(),
        letters: rows.map((row) => row.id),
        error: LEDGER_UNBOUND,
      });
      return true;
    }
    try {
      stats.d1Statements++;
      // The same id on a second try after a lost answer: the letter is written over, not doubled.
      await storeDeadLetters(
        db,
        rows.map((row) => JSON.parse(row.letter) as DeadLetter),
      );
    } catch (error) {
      log("error", "dead letters kept in the mailbox: D1 refused them", {
        queue: "vero",
        mailbox: this.ctx.id.toString(),
        letters: rows.map((row) => row.id),
        error: describeError(error),
      });
      return false;
    }
    this.exec(
      "DELETE FROM letters WHERE id IN (SELECT value FROM json_each(?))",
      JSON.stringify(rows.map((row) => row.id)),
    );
    return rows.length < 50 || this.storeLetters(stats);
  }

  /**
   * What D1's stalled_mailboxes should say of this mailbox, most pressing
   * first: it is capped (refusing jobs), its head is failing, or its oldest
   * job has waited longer than ALERT_STALLED_MINUTES with nothing failing
   * (a hot user); or nothing. `key` changes only when the row must be
   * written again, so a draining backlog is one write, not one per run.
   */
  private stalled(): { key: string; since: number; oldestAt: number; reason: string } | undefined {
    const head = this.head();
    if (!head) return undefined;
    const now = Date.now();
    const { oldest, held } = this.sql
      .exec<{ oldest: number; held: number }>("SELECT min(received_at) AS oldest, count(*) AS held FROM jobs")
      .one();
    const waitMs = settingsFor(this.env).alerts.stalledMinutes * 60_000;
    const cappedAt = this.getState<number>("cappedAt");
    if (cappedAt !== undefined)
      return {
        key: `capped ${cappedAt}`,
        since: cappedAt,
        // Dated back past the wait, so that the alert and readiness report it at once.
        oldestAt: Math.min(oldest, cappedAt - waitMs - 60_000),
        reason: `capped at ${MAILBOX_MAX_JOBS} jobs: new jobs are refused (the queue or the sender retries them)`,
      };
    if (head.failing_since !== null && this.dueAt(head) - head.failing_since > STALLED_AFTER_MS)
      return {
        key: `failing ${head.failing_since}`,
        since: head.failing_since,
        oldestAt: oldest,
        reason: head.last_error ?? "failing",
      };
    if (oldest < now - waitMs)
      return { key: "backlog", since: oldest, oldestAt: oldest, reason: `backlog: ${held} jobs waiting, none failed` };
    return undefined;
  }

  /**
   * Brings D1's stalled row in line with the mailbox: written when it
   * becomes stalled (or capped, or a backlog too old), gone once it is not.
   * A write D1 refused is tried on the next wake (at most RETRY_LATER_MS
   * away), so the alert never misses a stalled user; false while it is not
   * done.
   */
  private async syncStalled(stats: DrainStats): Promise<boolean> {
    const cappedAt = this.getState<number>("cappedAt");
    if (cappedAt !== undefined && this.heldCount() < MAILBOX_MAX_JOBS * 0.9) this.deleteState("cappedAt");
    const want = this.stalled();
    if (!this.stalledRowStale(want)) return true;
    const db = this.env.LEDGER;
    if (!db) return true;
    const mailbox = this.ctx.id.toString();
    try {
      stats.d1Statements++;
      if (!want) {
        await db.prepare("DELETE FROM stalled_mailboxes WHERE mailbox = ?1").bind(mailbox).run();
      } else {
        await db
          .prepare(
            `INSERT INTO stalled_mailboxes (mailbox, oldest_at, since, reason, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (mailbox) DO UPDATE SET oldest_at = excluded.oldest_at, since = excluded.since,
               reason = excluded.reason, updated_at = excluded.updated_at`,
          )
          .bind(
            mailbox,
            new Date(want.oldestAt).toISOString(),
            new Date(want.since).toISOString(),
            want.reason,
            new Date().toISOString(),
          )
          .run();
      }
    } catch (error) {
      // Without migrations/0002 there is no table to write: nothing to retry until it is applied.
      const missing = /no such table/i.test(describeError(error));
      log("warn", "could not update the mailbox's stalled row", {
        mailbox,
        error: describeError(error),
        ...(missing ? { fix: "apply migrations/0002_mailbox.sql to the LEDGER database" } : {}),
      });
      return missing;
    }
    this.transaction(() => {
      this.deleteState("stalled");
      if (!want) this.deleteState("stalledRow");
      else this.setState("stalledRow", { key: want.key } satisfies StalledRow);
    });
    return true;
  }

  /** D1's stalled row does not say what `want` (by default the mailbox's state) says. */
  private stalledRowStale(want = this.stalled()): boolean {
    // Mailboxes from before kept only a flag; their row is rewritten or cleared under the new record.
    const written =
      this.getState<StalledRow>("stalledRow") ?? (this.getState<boolean>("stalled") ? { key: "legacy" } : undefined);
    return want?.key !== written?.key;
  }

  /**
   * A report waits to be sent again, retries or dead letters were counted
   * before this wake (`woke`: they go with the wake after the one that
   * counted them, since a failing mailbox wakes on its schedule anyway and
   * a wake of their own would cost more than the report), or deliveries
   * have waited their time (COUNTS_REPORT_SECONDS).
   */
  private reportDue(woke: number): boolean {
    if (this.getState("outbox")) return true;
    const counted = this.firstCounted();
    if (counted !== undefined && counted < woke) return true;
    const due = this.reportDueAt(counted);
    return due !== undefined && Date.now() >= due;
  }

  /**
   * When the mailbox wakes for the counts waiting: COUNTS_REPORT_SECONDS
   * after the first of them (a delivery in the ledger, a retry or a dead
   * letter), and never sooner than that after the last report; undefined
   * when none wait.
   */
  private reportDueAt(counted = this.firstCounted()): number | undefined {
    const waiting = Math.min(this.firstUnreported() ?? Infinity, counted ?? Infinity);
    if (waiting === Infinity) return undefined;
    const every = this.getState<MailboxConfig>("config")?.reportEveryMs ?? REPORT_EVERY_MS;
    return Math.max(this.reported().seq, waiting) + every;
  }

  /** When the first retry or dead letter not yet reported was counted, or undefined for none. */
  private firstCounted(): number | undefined {
    // A count from before first_at has none: it is due at once.
    return (
      this.exec<{ first: number | null }>("SELECT min(coalesce(first_at, 0)) AS first FROM counts").one().first ??
      undefined
    );
  }

  /**
   * The first delivery not yet reported, or null: read from the ledger once
   * per instance (a scan of it), then kept as deliveries and reports go.
   */
  private firstUnreported(): number | null {
    this.unreportedSince ??= this.exec<{ first: number | null }>(
      "SELECT min(done_at) AS first FROM calls WHERE name IS NOT NULL AND done_at > ?",
      this.reported().upTo,
    ).one().first;
    return this.unreportedSince;
  }

  /**
   * The last report: its seq (its time, or one above the previous seq when
   * the clock is behind it) and `upTo`, the last delivery it counted.
   */
  private reported(): { seq: number; upTo: number } {
    return (
      this.getState<{ seq: number; upTo: number }>("reported") ?? {
        seq: this.getState<number>("reportSeq") ?? 0,
        upTo: 0,
      }
    );
  }

  /**
   * Sends the counts gathered since the last report to the mailbox's
   * counter shard: the deliveries the ledger recorded since the last
   * report's `upTo`, and the retries and dead letters counted on their own
   * (rare). A report is kept (the outbox) until the shard took it, and sent
   * again with the same sequence number, which the shard recognises: counts
   * are neither lost nor doubled.
   */
  private async report(stats: DrainStats): Promise<boolean> {
    let outbox = this.getState<CountReport>("outbox");
    if (!outbox) {
      const rows = new Map<string, CountRow>();
      const add = (bucket: string, name: string, outcome: CountedOutcome, count: number) => {
        const key = JSON.stringify([bucket, name, outcome]);
        const row = rows.get(key);
        if (row) row[4] += count;
        else rows.set(key, [bucket, "outbound", name, outcome, count]);
      };
      const counted = this.exec<{ bucket: string; name: string; outcome: CountedOutcome; count: number }>(
        "SELECT bucket, name, outcome, count FROM counts",
      ).toArray();
      for (const row of counted) add(row.bucket, row.name, row.outcome, row.count);
      const previous = this.reported();
      let upTo = previous.upTo;
      const delivered = this.exec<{ done_at: number; name: string; latency_ms: number | null }>(
        "SELECT done_at, name, latency_ms FROM calls WHERE name IS NOT NULL AND done_at > ?",
        previous.upTo,
      );
      for (const row of delivered) {
        const bucket = bucketOf(new Date(row.done_at));
        add(bucket, row.name, "delivered", 1);
        if (row.latency_ms !== null) add(bucket, String(binOf(row.latency_ms)), LATENCY, 1);
        upTo = Math.max(upTo, row.done_at);
      }
      if (rows.size === 0) return true;
      // Above every earlier report's, even after the mailbox emptied and forgot its own count.
      const seq = Math.max(previous.seq + 1, Date.now());
      outbox = { from: this.ctx.id.toString(), seq, rows: [...rows.values()] };
      const taken = outbox;
      this.transaction(() => {
        if (counted.length > 0) this.exec("DELETE FROM counts");
        this.setState("reported", { seq, upTo });
        this.setState("outbox", taken);
      });
      this.unreportedSince = null;
    }
    try {
      const shard = counterShardFor(this.env, outbox.from);
      stats.doRequests++;
      await shard.add(outbox);
      stats.reportedRows += outbox.rows.length;
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
      // A delivery not yet reported is kept: it is its own count.
      if (days !== undefined)
        this.exec(
          "DELETE FROM calls WHERE done_at < ? AND (name IS NULL OR done_at <= ?)",
          now - days * DAY_MS,
          this.reported().upTo,
        );
      this.setState("prunedAt", now);
    }
  }

  /**
   * The next alarm: the head's due time, side work that failed (at most
   * every RETRY_LATER_MS), letters waiting for the LEDGER binding, the next
   * report, the next prune, or none when empty.
   */
  private async armAlarm(failed: boolean, stats: DrainStats): Promise<void> {
    const now = Date.now();
    const head = this.head();
    const config = this.getState<MailboxConfig>("config");
    let at: number | undefined;
    if (head) at = Math.max(now, this.dueAt(head));
    if (failed || this.getState("outbox")) at = Math.min(at ?? Infinity, now + RETRY_LATER_MS);
    if (this.exec("SELECT 1 FROM letters LIMIT 1").toArray().length > 0)
      at = Math.min(at ?? Infinity, now + (this.env.LEDGER ? RETRY_LATER_MS : LEDGER_WAIT_MS));
    const reportAt = this.reportDueAt();
    if (reportAt !== undefined) at = Math.min(at ?? Infinity, Math.max(now, reportAt));
    if (at === undefined && config) {
      const oldest = this.exec<{ oldest: number | null }>("SELECT min(done_at) AS oldest FROM calls").one().oldest;
      if (oldest !== null)
        at = Math.max(oldest + config.retentionDays * DAY_MS, (this.getState<number>("prunedAt") ?? 0) + DAY_MS);
    }
    if (at !== undefined) {
      stats.alarmsSet++;
      await this.setAlarm(at);
      return;
    }
    // Nothing held, nothing recorded: the object keeps no storage at all.
    await this.ctx.storage.deleteAll();
    this.forget();
    this.sql.exec(SCHEMA);
  }

  // ---- storage helpers ---------------------------------------------------

  private exec<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]): SqlStorageCursor<T> {
    const cursor = this.sql.exec<T>(query, ...bindings);
    this.cursors.push(cursor);
    return cursor;
  }

  /** The rows read and written since the last call (secondary index rows included, as billed). */
  private takeRows(): { doRowsRead: number; doRowsWritten: number } {
    let doRowsRead = 0;
    let doRowsWritten = 0;
    for (const cursor of this.cursors) {
      doRowsRead += cursor.rowsRead;
      doRowsWritten += cursor.rowsWritten;
    }
    this.cursors = [];
    return { doRowsRead, doRowsWritten };
  }

  /** The alarm set, from memory when this instance knows it. */
  private async alarmTime(): Promise<number | null> {
    return this.alarmAt !== undefined ? this.alarmAt : await this.ctx.storage.getAlarm();
  }

  /**
   * Within the transaction that records a delivery no earlier one waits to
   * be reported with: sets the alarm for its report in that same commit,
   * when the alarm set is known (otherwise `accept`'s wakeFor reads it and
   * arms it). Returns the write to await, if one was made.
   */
  private armReportWithin(stats: DrainStats): Promise<void> | undefined {
    if (this.alarmAt === undefined) return undefined;
    const due = this.reportDueAt();
    if (due === undefined || firesBy(this.alarmAt, due)) return undefined;
    this.alarmAt = due;
    stats.alarmsSet++;
    return this.ctx.storage.setAlarm(due);
  }

  private async setAlarm(at: number): Promise<void> {
    this.alarmAt = undefined;
    await this.ctx.storage.setAlarm(at);
    this.alarmAt = at;
  }

  private deleteJob(key: JobKey): void {
    this.exec(`DELETE FROM jobs WHERE ${BY_KEY}`, ...keyArgs(key));
    this.heldJobs = undefined;
  }

  /** Above every stored job's: the last part of a job's key, its arrival among jobs of the same place. */
  private nextSeq(): number {
    this.lastSeq ??= this.sql.exec<{ last: number | null }>("SELECT max(seq) AS last FROM jobs").one().last ?? 0;
    this.lastSeq++;
    return this.lastSeq;
  }

  private head(): JobRow | undefined {
    return this.exec<JobRow>("SELECT * FROM jobs ORDER BY at, rseq, seq LIMIT 1").toArray()[0];
  }

  /** When the head may be tried: its stored retry time, or the backoff held in memory when storage refused it. */
  private dueAt(head: JobRow): number {
    return this.pause?.jobId === head.job_id ? Math.max(head.next_at, this.pause.until) : head.next_at;
  }

  private heldCount(): number {
    this.heldJobs ??= this.exec<{ n: number }>("SELECT count(*) AS n FROM jobs").one().n;
    return this.heldJobs;
  }

  private holds(messageId: string): boolean {
    return this.exec("SELECT 1 FROM jobs WHERE message_id = ? LIMIT 1", messageId).toArray().length > 0;
  }

  /** The calls of `messageId` the ledger holds. */
  private recordedCalls(messageId: string): Set<string> {
    const rows = this.exec<{ call: string }>("SELECT call FROM calls WHERE message_id = ?", messageId).toArray();
    return new Set(rows.map((row) => row.call));
  }

  /** Every call of the job is in the ledger (`done`): the event was delivered. */
  private isDelivered(job: VeroJob, done = this.recordedCalls(job.messageId)): boolean {
    return job.requests.every((request, index) =>
      done.has(callKey((job.step ?? 0) + index, request.method, request.path)),
    );
  }

  /** A call taken over from another ledger: it skips the call, and is not counted here. */
  private record(messageId: string, call: string, status: number, at: number): void {
    this.exec(
      "INSERT INTO calls (message_id, call, status, done_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
      messageId,
      call,
      status,
      at,
    );
  }

  /**
   * A call Vero accepted from this mailbox: its ledger row is also its
   * count (`name`), and on a job's last call (`finished`) the job's latency
   * from receipt, so a delivery writes one row, which the next report sums.
   * True when no delivery before it was known to wait for a report: the
   * report is then to be armed.
   */
  private recordDelivered(
    ledgerId: string,
    call: string,
    status: number,
    request: VeroRequest,
    finished: VeroJob | undefined,
    head: Pick<JobRow, "received_at"> | undefined,
  ): boolean {
    const doneAt = this.stamp();
    const opens = typeof this.unreportedSince !== "number";
    if (this.unreportedSince === null) this.unreportedSince = doneAt;
    const receivedAt = finished?.at ?? head?.received_at;
    this.exec(
      `INSERT INTO calls (message_id, call, status, done_at, name, latency_ms) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING`,
      ledgerId,
      call,
      status,
      doneAt,
      callName(request),
      finished && receivedAt !== undefined ? Math.max(0, doneAt - receivedAt) : null,
    );
    return opens;
  }

  /**
   * A delivery's time, above every earlier delivery's of this mailbox, so
   * that a report's watermark (`reportedTo`) splits the ledger exactly
   * into what was reported and what was not.
   */
  private stamp(): number {
    const floor =
      this.lastStamp ??
      this.sql.exec<{ last: number | null }>("SELECT max(done_at) AS last FROM calls WHERE name IS NOT NULL").one()
        .last ??
      0;
    this.lastStamp = Math.max(Date.now(), floor + 1);
    return this.lastStamp;
  }

  private count(name: string, outcome: CountedOutcome): void {
    this.exec(
      `INSERT INTO counts (bucket, name, outcome, count, first_at) VALUES (?, ?, ?, 1, ?)
       ON CONFLICT (bucket, name, outcome) DO UPDATE SET count = count + 1`,
      bucketOf(new Date()),
      name,
      outcome,
      Date.now(),
    );
  }

  /** transactionSync, with the settings not yet stored, and a cache that forgets what a rolled-back transaction wrote. */
  private transaction(writes: () => void): void {
    try {
      this.ctx.storage.transactionSync(() => {
        if (this.unsavedConfig) this.setState("config", this.unsavedConfig);
        writes();
      });
      this.unsavedConfig = undefined;
    } catch (error) {
      this.forget();
      throw error;
    }
  }

  /** What this object keeps in memory of its storage, after storage changed under it (a rollback, a wipe). */
  private forget(): void {
    this.cached.clear();
    this.unreportedSince = undefined;
    this.alarmAt = undefined;
    this.heldJobs = undefined;
  }

  private getState<T>(key: string): T | undefined {
    if (!this.cached.has(key)) {
      const row = this.exec<{ value: string }>("SELECT value FROM state WHERE key = ?", key).toArray()[0];
      this.cached.set(key, row ? JSON.parse(row.value) : undefined);
    }
    return this.cached.get(key) as T | undefined;
  }

  private setState(key: string, value: unknown): void {
    this.exec(
      "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      JSON.stringify(value),
    );
    this.cached.set(key, value);
  }

  private deleteState(key: string): void {
    this.exec("DELETE FROM state WHERE key = ?", key);
    this.cached.set(key, undefined);
  }
}
