import { LEDGER_UNBOUND } from "../shared/bindings.ts";
import type { Env } from "../shared/env.ts";
import { describeError, log } from "../shared/log.ts";
import { settingsFor } from "../shared/settings.ts";
import { Counters } from "./counters.ts";
import { type DeadLetter, type DeadLetterSource, storeDeadLetterStatements } from "./dead-letters.ts";
import { decide, logDeadLettered } from "./retry-or-dead-letter.ts";
import { backoffSeconds, DEFAULT_RETRY_POLICY, keepDelaySeconds, type RetryPolicy } from "./retry-schedule.ts";

export { MAX_RETRIES } from "../shared/queue-limits.ts";
/**
 * What the queue consumers share: the one place where a message's fate
 * (ack, retry, dead letter) is decided, by the retry schedule.
 */
export { QUEUE_NAMES } from "../shared/queue-names.ts";

/**
 * The retry schedule from the settings. A consumer has no response to
 * carry a bad value, so each is logged as an error on every batch, and a
 * safe value applies (see parseRetryPolicy).
 */
export function retryPolicyFor(env: Env): RetryPolicy {
  const { policy, invalid } = settingsFor(env).retry;
  for (const problem of invalid) log("error", "queue retry setting is invalid", { problem });
  return policy;
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

  /**
   * `keepForRetention`: a dead-letter queue's settlement. Nothing stands
   * behind those messages, so while the store is down they are kept for the
   * queue's whole retention instead of following the delivery schedule.
   */
  constructor(
    readonly source: DeadLetterSource,
    readonly policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    readonly options: { keepForRetention?: boolean } = {},
  ) {}

  settle(message: Message<unknown>, outcome: Outcome): Fate {
    if (outcome.ok) {
      message.ack();
      return "acked";
    }
    // Queues keeps a message's first enqueue time across retries (a re-driven dead letter is a new message, with a new horizon).
    const decision = decide(
      this.policy,
      outcome,
      {
        attempts: message.attempts,
        elapsedSeconds: Math.max(0, (Date.now() - message.timestamp.getTime()) / 1000),
      },
      { queue: this.source, id: message.id },
    );
    if (decision.retry) {
      message.retry({ delaySeconds: decision.delaySeconds });
      return "retried";
    }
    this.letters.push({
      message,
      letter: {
        id: message.id,
        source: this.source,
        body: message.body,
        reason: decision.reason,
        permanent: decision.permanent,
        attempts: message.attempts,
        failedAt: new Date().toISOString(),
      },
    });
    return "dead_lettered";
  }

  /**
   * Writes the dead letters and `statements` (the batch's calls and
   * counters) in one `batch()`, then acks the dead-lettered messages, or
   * retries them if the write failed. When that batch fails, the statements
   * are written alone and the letters in halves, so that one letter D1
   * refuses (a poison letter) fails only itself: about 2·log2(n) more round
   * trips for one bad letter among n. Returns the round trips made.
   */
  async flush(db: D1Database | undefined, statements: (D1PreparedStatement | undefined)[] = []): Promise<number> {
    const writes = statements.filter((statement) => statement !== undefined);
    if (writes.length === 0 && this.letters.length === 0) return 0;
    const unstored = new Map<Message<unknown>, unknown>();
    let trips = 0;
    if (!db) {
      const failure = new Error(LEDGER_UNBOUND);
      for (const { message } of this.letters) unstored.set(message, failure);
    } else {
      trips++;
      const failure = await attempt(() => db.batch([...writes, ...storeDeadLetterStatements(db, this.lettersOnly())]));
      if (failure !== undefined) {
        // The other writes alone tell an outage (they fail too: every letter retries) from a poison letter.
        const writeFailure = writes.length > 0 ? await attempt(() => db.batch(writes)) : undefined;
        if (writes.length > 0) trips++;
        if (writeFailure !== undefined) {
          log("error", "could not write to the ledger; dead letters will retry", {
            queue: this.source,
            deadLetters: this.letters.length,
            records: writes.length,
            error: describeError(writeFailure),
          });
          for (const { message } of this.letters) unstored.set(message, writeFailure);
        } else trips += await storeInHalves(db, this.letters, unstored, { trips: MAX_SPLIT_TRIPS });
      }
    }
    for (const { message, letter } of this.letters) {
      const failure = unstored.get(message);
      if (failure !== undefined) {
        const delaySeconds = this.options.keepForRetention
          ? keepDelaySeconds(this.policy, message.attempts)
          : backoffSeconds(this.policy, message.attempts);
        log("error", "could not store a dead letter, will retry", {
          queue: this.source,
          id: message.id,
          attempts: message.attempts,
          delaySeconds,
          error: describeError(failure),
        });
        message.retry({ delaySeconds });
        continue;
      }
      logDeadLettered({ queue: this.source, id: message.id }, letter);
      message.ack();
    }
    this.letters.length = 0;
    return trips;
  }

  private lettersOnly(): DeadLetter[] {
    return this.letters.map(({ letter }) => letter);
  }
}

/** The error `write` threw, or undefined. */
async function attempt(write: () => Promise<unknown>): Promise<unknown> {
  try {
    await write();
    return undefined;
  } catch (error) {
    return error;
  }
}

/** Round trips the halving may take: one bad letter among 100 needs about 14; an outage stops here. */
const MAX_SPLIT_TRIPS = 20;

/**
 * Stores `letters` in one batch, or, failing that, each half on its own;
 * records the ones that cannot be stored (all that are left once `budget` is spent).
 */
async function storeInHalves(
  db: D1Database,
  letters: { message: Message<unknown>; letter: DeadLetter }[],
  unstored: Map<Message<unknown>, unknown>,
  budget: { trips: number },
  lastFailure: unknown = undefined,
): Promise<number> {
  if (letters.length === 0) return 0;
  if (budget.trips <= 0) {
    for (const { message } of letters) unstored.set(message, lastFailure);
    return 0;
  }
  budget.trips--;
  const failure = await attempt(() =>
    db.batch(
      storeDeadLetterStatements(
        db,
        letters.map(({ letter }) => letter),
      ),
    ),
  );
  if (failure === undefined) return 1;
  if (letters.length === 1) {
    unstored.set((letters[0] as { message: Message<unknown> }).message, failure);
    return 1;
  }
  const middle = Math.ceil(letters.length / 2);
  return (
    1 +
    (await storeInHalves(db, letters.slice(0, middle), unstored, budget, failure)) +
    (await storeInHalves(db, letters.slice(middle), unstored, budget, failure))
  );
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
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): Promise<void> {
  const settlement = new Settlement(source, policy, { keepForRetention: true });
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
