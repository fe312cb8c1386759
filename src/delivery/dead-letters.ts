/**
 * Dead letters: messages that will not be delivered without an operator,
 * kept in the ledger (D1) with the reason, until they are re-driven or
 * deleted. Nothing is dropped silently: a permanent failure and an
 * exhausted retry budget both end here.
 */

import { veroJobSchema } from "../outbound/job.ts";
import type { Env } from "../shared/env.ts";
import { BridgeError } from "../shared/errors.ts";
import { log } from "../shared/log.ts";
import { describeIssues } from "../shared/zod.ts";
import { type DeadLetter, type DeadLetterSummary, deleteDeadLetter, getDeadLetter } from "./ledger.ts";
import { mailboxConfigFor, mailboxFor, recordedBefore } from "./mailboxes.ts";

export {
  type DeadLetter,
  type DeadLetterSource,
  type DeadLetterSummary,
  deadLetterSchema,
  deadLetterSource,
  deleteDeadLetter,
  getDeadLetter,
  listDeadLetters,
  storeDeadLetters,
} from "./ledger.ts";

/** The ledger, or the 503 that names the binding. */
export function requireLedger(env: Env): D1Database {
  if (!env.LEDGER) {
    throw new BridgeError(503, "not_configured", "the LEDGER D1 database is not bound (see wrangler.toml)", {
      details: { missing: ["LEDGER"], invalid: [] },
    });
  }
  return env.LEDGER;
}

/**
 * Sends a dead letter back to the queue it came from, then forgets it.
 * Without VERO_QUEUE, a Vero letter goes straight back into its user's
 * mailbox, whose ledger keeps the calls Vero already accepted, so the job
 * makes only the calls it is missing (and none if it was delivered since).
 */
export async function redriveDeadLetter(env: Env, letter: DeadLetter): Promise<void> {
  const queue = letter.source === "segment" ? env.SEGMENT_QUEUE : env.VERO_QUEUE;
  const binding = letter.source === "segment" ? "SEGMENT_QUEUE" : "VERO_QUEUE";
  // Sent before the delete: a crash in between leaves a duplicate to delete, never a loss.
  if (queue) await queue.send(letter.body, { contentType: "json" });
  else if (letter.source === "vero") await redriveToMailbox(env, letter);
  else throw new BridgeError(503, "not_configured", `${binding} is not bound: cannot re-drive ${letter.id}`);
  await deleteDeadLetter(requireLedger(env), letter.id);
  log("info", "dead letter re-driven", { id: letter.id, source: letter.source });
}

async function redriveToMailbox(env: Env, letter: DeadLetter): Promise<void> {
  const parsed = veroJobSchema.safeParse(letter.body);
  if (!parsed.success)
    throw new BridgeError(
      409,
      "not_redrivable",
      `dead letter ${letter.id} is not a Vero job: ${describeIssues(parsed.error, { whole: "body", most: 3 })}`,
    );
  const ready = mailboxConfigFor(env);
  if (!ready.ok) throw new BridgeError(503, "not_configured", `cannot re-drive ${letter.id}: ${ready.reason}`);
  const recorded = await recordedBefore(env, [parsed.data]);
  const job = parsed.data;
  await mailboxFor(env, ready.config, job.user).accept([{ job, recorded: recorded.get(job.messageId) }], ready.config);
}

/** The dead letter `id`, or the 404 that names it. */
export async function mustGetDeadLetter(db: D1Database, id: string): Promise<DeadLetter> {
  const letter = await getDeadLetter(db, id);
  if (!letter) throw new BridgeError(404, "not_found", `no dead letter ${id}`);
  return letter;
}

/** Re-drives the listed letters one by one; returns the ids re-driven (one deleted meanwhile is passed over). */
export async function redriveListed(env: Env, db: D1Database, listed: readonly DeadLetterSummary[]): Promise<string[]> {
  const redriven: string[] = [];
  for (const summary of listed) {
    const letter = await getDeadLetter(db, summary.id);
    if (!letter) continue;
    await redriveDeadLetter(env, letter);
    redriven.push(letter.id);
  }
  return redriven;
}

/** An operator's decision that a dead letter will not be delivered. */
export async function discardDeadLetter(db: D1Database, letter: DeadLetter): Promise<void> {
  await deleteDeadLetter(db, letter.id);
  log("info", "dead letter deleted", { id: letter.id, source: letter.source });
}
