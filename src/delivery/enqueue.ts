/**
 * What both routes need in queue mode: whether it is on, and how a failure
 * to enqueue is answered.
 */
import type { Env } from "../shared/env.ts";
import { BridgeError } from "../shared/errors.ts";
import { describeError } from "../shared/log.ts";

/**
 * The queue a route enqueues to, or undefined for inline delivery. Queue
 * mode needs the ledger, where dead letters are kept, as well: without it an undeliverable
 * message would have nowhere to go but retries, so the route refuses to
 * accept events it could lose, and says which binding is missing.
 */
export function queueFor(
  env: Env,
  binding: "SEGMENT_QUEUE" | "VERO_QUEUE" | "VERO_OVERFLOW_QUEUE",
): Queue<unknown> | undefined {
  const queue = env[binding];
  if (!queue) return undefined;
  if (!env.LEDGER) {
    throw new BridgeError(
      503,
      "not_configured",
      `${binding} is bound but LEDGER is not: bind the LEDGER D1 database, which keeps the dead letters (see wrangler.toml)`,
      { details: { missing: ["LEDGER"], invalid: [] } },
    );
  }
  return queue;
}

/** The queue did not take the message: nothing holds it, so the sender must retry. */
export function enqueueFailed(error: unknown, details?: unknown): BridgeError {
  return new BridgeError(
    503,
    "queue_unavailable",
    `the queue did not accept the event; retry later (${describeError(error)})`,
    {
      details,
      cause: error,
    },
  );
}
