/**
 * Re-drive: an operator sends dead letters back the way they came, to their
 * queue, or without VERO_QUEUE a Vero letter straight into its user's
 * mailbox. The dead-letter store (src/delivery/dead-letters.ts) keeps bodies
 * as they were enqueued; reading a Vero letter's body as a job is done here.
 */
import {
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterSource,
  type DeadLetterSummary,
  deleteDeadLetter,
  deleteDeadLetterIds,
  getDeadLetters,
  listDeadLetters,
  requireLedger,
} from "../delivery/dead-letters.ts";
import { enqueueFailed } from "../delivery/enqueue.ts";
import { veroJobSchema } from "../outbound/job.ts";
import { handJobsToMailboxes, mailboxConfigFor } from "../outbound/mailboxes.ts";
import type { Env } from "../shared/env.ts";
import { BridgeError } from "../shared/errors.ts";
import { jsonBytes } from "../shared/json.ts";
import { log } from "../shared/log.ts";
import { queuedBytes, sendBatchChunks } from "../shared/queue-limits.ts";
import { describeIssues } from "../shared/zod.ts";

/**
 * Sends a dead letter back to the queue it came from, then forgets it.
 * Without VERO_QUEUE, a Vero letter goes straight back into its user's
 * mailbox (`redriveToMailboxes`), whose record of calls holds those Vero already
 * accepted, so the job makes only the calls it is missing (and none if it
 * was delivered since).
 */
export async function redriveDeadLetter(env: Env, letter: DeadLetter): Promise<void> {
  const queue = queueOf(env, letter.source);
  // Sent before the delete: a crash in between leaves a duplicate to delete, never a loss.
  if (queue)
    await queue.send(letter.body, { contentType: "json" }).catch((error: unknown) => {
      throw enqueueFailed(error, { redriven: [] });
    });
  else if (letter.source === "vero") {
    if ((await redriveToMailboxes(env, [letter])).length === 0)
      throw new BridgeError(503, "mailbox_unavailable", `the user's mailbox did not take ${letter.id}; retry later`);
  } else throw noQueue(letter);
  await deleteDeadLetter(requireLedger(env), letter.id);
  log("info", "dead letter re-driven", { id: letter.id, source: letter.source });
}

/** The queue a letter goes back to: the one it came from. */
const queueOf = (env: Env, source: DeadLetterSource): Queue | undefined =>
  source === "segment" ? env.SEGMENT_QUEUE : env.VERO_QUEUE;

/** A letter whose queue is not bound, and that has no other way back (a Segment letter). */
const noQueue = (letter: DeadLetter) =>
  new BridgeError(
    503,
    "not_configured",
    `${letter.source === "segment" ? "SEGMENT_QUEUE" : "VERO_QUEUE"} is not bound: cannot re-drive ${letter.id}`,
  );

/**
 * The most letters one bulk re-drive takes while Vero letters go back to the
 * mailboxes (no VERO_QUEUE): each may be its own user's Durable Object call,
 * and an invocation may make 1,000 subrequests to Cloudflare services on
 * Workers Free (10,000 on Paid); the rest is room for its D1 queries (at most
 * 3 per 100 letters). With the queue, 1,000 letters of 128 KB take 500
 * sendBatch calls, within it.
 */
export const REDRIVE_TO_MAILBOXES_MAX = 900;

/** How many letters a bulk re-drive of `requested` may take in this invocation. */
export function redrivePageSize(env: Env, requested: number): number {
  return env.VERO_QUEUE ? requested : Math.min(requested, REDRIVE_TO_MAILBOXES_MAX);
}

/** Letters whose bodies are read in one query: at most a queue message (128 KB) each, so about 13 MB. */
const READ_CHUNK = 100;

/**
 * Re-drives the listed letters in bulk; returns the ids re-driven (one
 * deleted meanwhile is passed over), in the listed order within each queue.
 * Per 100 letters: one read, `sendBatch` calls within Queues' limits, and
 * one delete of those sent, so 100 letters cost 2 D1 queries and 1,000 cost
 * 20, within the 50 and 1,000 queries per invocation of Workers Free and
 * Paid. Sent before deleted, as one by one.
 */
export async function redriveListed(env: Env, db: D1Database, listed: readonly DeadLetterSummary[]): Promise<string[]> {
  const redriven: string[] = [];
  for (let start = 0; start < listed.length; start += READ_CHUNK) {
    const ids = listed.slice(start, start + READ_CHUNK).map((summary) => summary.id);
    const letters = await getDeadLetters(db, ids);
    const sent: string[] = [];
    try {
      for (const source of ["segment", "vero"] as const) {
        const queue = queueOf(env, source);
        const ofSource = letters.filter((letter) => letter.source === source);
        const first = ofSource[0];
        if (!first) continue;
        if (!queue && source === "vero") {
          sent.push(...(await redriveToMailboxes(env, ofSource)));
          continue;
        }
        if (!queue) throw noQueue(first);
        for (const chunk of sendBatchChunks(ofSource, (letter) => queuedBytes(jsonBytes(letter.body)))) {
          await queue
            .sendBatch(chunk.map((letter) => ({ body: letter.body, contentType: "json" as const })))
            .catch((error: unknown) => {
              // Retryable, and the letters sent before it are gone from the store: the answer says which.
              throw enqueueFailed(error, { redriven: [...redriven, ...sent] });
            });
          sent.push(...chunk.map((letter) => letter.id));
        }
      }
    } finally {
      // What was sent is forgotten even when a later send failed: it must not be re-driven twice.
      await deleteDeadLetterIds(db, sent);
      redriven.push(...sent);
    }
  }
  if (redriven.length > 0)
    log("info", "dead letters re-driven", { count: redriven.length, ids: redriven.slice(0, 50) });
  return redriven;
}

/** One page of at most 100 letters a request, so a huge backlog cannot exhaust one request's limits. */
export const REDRIVE_PAGE = 100;

/** The console's bulk re-drive: the first page of letters matching `filter`, and how many are left. */
export async function redriveMatching(
  env: Env,
  db: D1Database,
  filter: Omit<DeadLetterFilter, "cursor" | "limit">,
): Promise<{ redriven: number; remaining: number }> {
  const page = await listDeadLetters(db, { ...filter, limit: REDRIVE_PAGE });
  const redriven = (await redriveListed(env, db, page.letters)).length;
  return { redriven, remaining: Math.max(0, page.total - redriven) };
}

/**
 * Without VERO_QUEUE: Vero dead letters (at most a page) go back into their
 * users' mailboxes, one call per user; returns the ids a mailbox took.
 */
export async function redriveToMailboxes(env: Env, letters: readonly DeadLetter[]): Promise<string[]> {
  const ready = mailboxConfigFor(env);
  if (!ready.ok) throw new BridgeError(503, "not_configured", `cannot re-drive: ${ready.reason}`);
  const items = letters.map((letter) => {
    const parsed = veroJobSchema.safeParse(letter.body);
    if (!parsed.success)
      throw new BridgeError(
        409,
        "not_redrivable",
        `dead letter ${letter.id} is not a Vero job: ${describeIssues(parsed.error, { whole: "body", most: 3 })}`,
      );
    return { id: letter.id, job: parsed.data };
  });
  const { handed } = await handJobsToMailboxes(env, ready, items, ({ job }) => job);
  const failed = handed.filter((group) => !group.ok);
  if (failed.length > 0)
    log("warn", "dead letters not re-driven: their mailboxes did not take them", {
      letters: failed.flatMap((group) => group.items.map((item) => item.id)).slice(0, 50),
    });
  return handed.filter((group) => group.ok).flatMap((group) => group.items.map((item) => item.id));
}
