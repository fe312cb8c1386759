/**
 * Dead letters: messages that will not be delivered without an operator,
 * kept in the ledger (D1) with the reason, until they are re-driven or
 * deleted. Nothing is dropped silently: a permanent failure and an
 * exhausted retry budget both end here.
 */

import type { Env } from "../shared/env.ts";
import { BridgeError } from "../shared/errors.ts";
import { log } from "../shared/log.ts";
import { type DeadLetter, deleteDeadLetter, getDeadLetter, LEDGER_UNBOUND } from "./ledger.ts";

export {
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterSource,
  type DeadLetterSummary,
  deadLetterSchema,
  deadLetterSource,
  deleteDeadLetter,
  deleteDeadLetterIds,
  getDeadLetter,
  getDeadLetters,
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

/** The dead letter `id`, or the 404 that names it. */
export async function requireDeadLetter(db: D1Database, id: string): Promise<DeadLetter> {
  const letter = await getDeadLetter(db, id);
  if (!letter) throw new BridgeError(404, "not_found", `no dead letter ${id}`);
  return letter;
}

/** An operator's decision that a dead letter will not be delivered. */
export async function discardDeadLetter(db: D1Database, letter: DeadLetter): Promise<void> {
  await deleteDeadLetter(db, letter.id);
  log("info", "dead letter deleted", { id: letter.id, source: letter.source });
}
