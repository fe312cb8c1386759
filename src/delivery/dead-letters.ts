/**
 * Dead letters: messages that will not be delivered without an operator,
 * kept in the ledger (D1) with the reason, until they are re-driven or
 * deleted. Nothing is dropped silently: a permanent failure and an
 * exhausted retry budget both end here.
 */

import { enqueueFailed } from "../shared/enqueue.ts";
import type { Env } from "../shared/env.ts";
import { BridgeError } from "../shared/errors.ts";
import { jsonBytes } from "../shared/json.ts";
import { log } from "../shared/log.ts";
import { queuedBytes, sendBatchChunks } from "../shared/queue-names.ts";
import {
  type DeadLetter,
  type DeadLetterSource,
  type DeadLetterSummary,
  deleteDeadLetter,
  deleteDeadLetterIds,
  getDeadLetter,
  getDeadLetters,
  LEDGER_UNBOUND,
} from "./ledger.ts";

export {
  type DeadLetter,
  type DeadLetterSource,
  type DeadLetterSummary,
  deadLetterSchema,
  deadLetterSource,
  deleteDeadLetter,
  getDeadLetter,
  LEDGER_UNBOUND,
  listDeadLetters,
  storeDeadLetters,
} from "./ledger.ts";

/** The ledger, or the 503 that names the binding. */
export function requireLedger(env: Env): D1Database {
  if (!env.LEDGER) {
    throw new BridgeError(503, "not_configured", LEDGER_UNBOUND, {
      details: { missing: ["LEDGER"], invalid: [] },
    });
  }
  return env.LEDGER;
}

/**
 * Puts Vero letters back into their users' mailboxes (when VERO_QUEUE is
 * not bound) and returns the ids taken: the outbound direction's, handed in
 * by the caller so that this kit imports neither direction.
 */
export type MailboxRedrive = (env: Env, letters: readonly DeadLetter[]) => Promise<string[]>;

/**
 * Sends a dead letter back to the queue it came from, then forgets it.
 * Without VERO_QUEUE, a Vero letter goes straight back into its user's
 * mailbox (`toMailboxes`), whose ledger keeps the calls Vero already
 * accepted, so the job makes only the calls it is missing (and none if it
 * was delivered since).
 */
export async function redriveDeadLetter(env: Env, letter: DeadLetter, toMailboxes: MailboxRedrive): Promise<void> {
  const queue = queueOf(env, letter.source);
  // Sent before the delete: a crash in between leaves a duplicate to delete, never a loss.
  if (queue)
    await queue.send(letter.body, { contentType: "json" }).catch((error: unknown) => {
      throw enqueueFailed(error, { redriven: [] });
    });
  else if (letter.source === "vero") {
    if ((await toMailboxes(env, [letter])).length === 0)
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

/** The dead letter `id`, or the 404 that names it. */
export async function requireDeadLetter(db: D1Database, id: string): Promise<DeadLetter> {
  const letter = await getDeadLetter(db, id);
  if (!letter) throw new BridgeError(404, "not_found", `no dead letter ${id}`);
  return letter;
}

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
export async function redriveListed(
  env: Env,
  db: D1Database,
  listed: readonly DeadLetterSummary[],
  toMailboxes: MailboxRedrive,
): Promise<string[]> {
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
          sent.push(...(await toMailboxes(env, ofSource)));
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

/** An operator's decision that a dead letter will not be delivered. */
export async function discardDeadLetter(db: D1Database, letter: DeadLetter): Promise<void> {
  await deleteDeadLetter(db, letter.id);
  log("info", "dead letter deleted", { id: letter.id, source: letter.source });
}
