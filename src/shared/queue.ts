import * as z from "zod/mini";
import type { Env } from "./env.ts";
import { Counters, type DeadLetter, type DeadLetterSource, storeDeadLetterStatements } from "./ledger.ts";
import { describeError, log } from "./log.ts";
import { MAX_RETRIES } from "./queue-names.ts";
import "./zod.ts";

/**
 * What the queue consumers share: the retry policy, and the one place where
 * a message's fate (ack, retry, dead letter) is decided.
 */
export { MAX_RETRIES, QUEUE_NAMES } from "./queue-names.ts";

export const BASE_DELAY_SECONDS = 5;
const MAX_DELAY_SECONDS = 300;

/**
 * Exponential backoff by `msg.attempts` (1 on first delivery): 5 s, 10 s, 20 s,
 * ... capped at 5 minutes, so 24 retries span about 1 h 35 min of outage.
 * A Retry-After from the upstream lengthens the wait, never shortens it.
 * `baseSeconds` is QUEUE_RETRY_BASE_SECONDS; tests shrink it to run outages in seconds.
 */
export function backoffSeconds(attempts: number, retryAfter?: number, baseSeconds = BASE_DELAY_SECONDS): number {
  const exponential = Math.min(MAX_DELAY_SECONDS, baseSeconds * 2 ** Math.max(0, attempts - 1));
  return Math.min(MAX_DELAY_SECONDS, Math.max(exponential, Math.ceil(retryAfter ?? 0)));
}

const retryBaseSchema = z.pipe(z.coerce.number(), z.int().check(z.minimum(0), z.maximum(MAX_DELAY_SECONDS)));

/**
 * QUEUE_RETRY_BASE_SECONDS, validated. A consumer has no response to put a
 * 503 in, so an invalid value is logged and the default applies: a typo must
 * not stop delivery, nor turn backoff into a hot loop.
 */
export function retryBaseSeconds(env: Pick<Env, "QUEUE_RETRY_BASE_SECONDS">): number {
  const raw = env.QUEUE_RETRY_BASE_SECONDS;
  if (raw === undefined || String(raw).trim() === "") return BASE_DELAY_SECONDS;
  const parsed = retryBaseSchema.safeParse(String(raw).trim());
  if (parsed.success) return parsed.data;
  log("error", "QUEUE_RETRY_BASE_SECONDS is not a whole number of seconds from 0 to 300; using 5", {});
  return BASE_DELAY_SECONDS;
}

/** Short enough for a log line and a dead letter's summary. */
export function describeIssues(error: z.core.$ZodError): string {
  const issues = error.issues.slice(0, 3).map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`);
  return `${issues.join("; ")}${error.issues.length > 3 ? `; and ${error.issues.length - 3} more` : ""}`;
}

/** How one message's delivery ended. */
export type Outcome =
  | { ok: true }
  | { ok: false; retryable: true; reason: string; retryAfter?: number }
  | { ok: false; retryable: false; reason: string };

/** What became of a message: acked (delivered), retried, or kept as a dead letter. */
export type Fate = "acked" | "retried" | "dead_lettered";

/**
 * One consumer batch's settling, the one place where a message's fate (ack,
 * retry, dead letter) is decided:
 * - delivered: ack;
 * - permanent failure: kept as a dead letter with its reason, then ack;
 * - retryable failure: retry with backoff, until the last attempt, which is
 *   kept as a dead letter instead.
 * Dead letters are written by `flush`, with the batch's other ledger writes,
 * in one round trip. When they cannot be stored, their messages are retried:
 * a message is never acked without being delivered or kept.
 */
export class Settlement {
  private readonly letters: { message: Message<unknown>; letter: DeadLetter }[] = [];

  constructor(
    readonly source: DeadLetterSource,
    readonly retryBaseSeconds = BASE_DELAY_SECONDS,
  ) {}

  settle(message: Message<unknown>, outcome: Outcome): Fate {
    if (outcome.ok) {
      message.ack();
      return "acked";
    }
    const lastAttempt = message.attempts > MAX_RETRIES;
    if (outcome.retryable && !lastAttempt) {
      const delaySeconds = backoffSeconds(message.attempts, outcome.retryAfter, this.retryBaseSeconds);
      log("warn", "delivery failed, will retry", {
        queue: this.source,
        id: message.id,
        attempts: message.attempts,
        delaySeconds,
        reason: outcome.reason,
      });
      message.retry({ delaySeconds });
      return "retried";
    }
    const reason = outcome.retryable
      ? `retries exhausted after ${message.attempts} attempts: ${outcome.reason}`
      : outcome.reason;
    this.letters.push({
      message,
      letter: {
        id: message.id,
        source: this.source,
        body: message.body,
        reason,
        permanent: !outcome.retryable,
        attempts: message.attempts,
        failedAt: new Date().toISOString(),
      },
    });
    return "dead_lettered";
  }

  /**
   * Writes the dead letters and `statements` (the batch's calls and
   * counters) in one `batch()`, then acks the dead-lettered messages, or
   * retries them if the write failed. Returns the round trips made (0 or 1).
   */
  async flush(db: D1Database | undefined, statements: (D1PreparedStatement | undefined)[] = []): Promise<number> {
    const writes = statements.filter((statement) => statement !== undefined);
    if (writes.length === 0 && this.letters.length === 0) return 0;
    let failure: unknown;
    if (!db) failure = new Error("the LEDGER D1 database is not bound");
    else {
      try {
        await db.batch([
          ...writes,
          ...storeDeadLetterStatements(
            db,
            this.letters.map(({ letter }) => letter),
          ),
        ]);
      } catch (error) {
        failure = error;
      }
    }
    if (failure !== undefined) {
      log("error", "could not write to the ledger; dead letters will retry", {
        queue: this.source,
        deadLetters: this.letters.length,
        records: writes.length,
        error: describeError(failure),
      });
    }
    for (const { message, letter } of this.letters) {
      if (failure !== undefined) {
        message.retry({ delaySeconds: backoffSeconds(message.attempts, undefined, this.retryBaseSeconds) });
        continue;
      }
      log("error", "delivery failed for good, dead-lettered", {
        queue: this.source,
        id: message.id,
        attempts: message.attempts,
        permanent: letter.permanent,
        reason: letter.reason,
      });
      message.ack();
    }
    this.letters.length = 0;
    return db ? 1 : 0;
  }
}

/**
 * The dead-letter queues' consumer: what reaches them ran out of retries
 * without the main consumer recording it (a crash, a timeout of the whole
 * invocation). Each message is stored where an operator can see it.
 */
export async function consumeDeadLetterQueue(
  batch: MessageBatch<unknown>,
  source: DeadLetterSource,
  ledger: D1Database | undefined,
): Promise<void> {
  const settlement = new Settlement(source);
  const counters = new Counters();
  for (const message of batch.messages) {
    settlement.settle(message, {
      ok: false,
      retryable: false,
      reason: `reached the ${source} dead-letter queue: delivery attempts exhausted`,
    });
  }
  counters.add(
    source === "vero" ? "outbound" : "inbound",
    "(dead-letter queue)",
    "dead_lettered",
    batch.messages.length,
  );
  await settlement.flush(ledger, ledger ? [counters.statement(ledger)] : []);
}
