import * as z from "zod/mini";
import type { Env } from "./env.ts";
import { BridgeError } from "./errors.ts";
import * as ledger from "./ledger.ts";
import { log } from "./log.ts";
import "./zod.ts";

/**
 * The dead-letter store: messages that will not be delivered without an
 * operator, kept in KV with the reason, until they are re-driven or deleted.
 * Nothing is dropped silently: a permanent failure and an exhausted retry
 * budget both end here.
 */
export const DEAD_LETTER_PREFIX = "dead-letter:";

/** Which queue a dead letter came from, so a re-drive sends it back there. */
export const deadLetterSource = z.enum(["segment", "vero"]);
export type DeadLetterSource = z.infer<typeof deadLetterSource>;

export const deadLetterSchema = z.object({
  id: z.string(),
  source: deadLetterSource,
  /** The queue message's body, as it was enqueued. */
  body: z.unknown(),
  reason: z.string(),
  /** Whether the failure was permanent (bad data) or retries ran out (the upstream stayed down). */
  permanent: z.boolean(),
  attempts: z.int().check(z.nonnegative()),
  failedAt: z.string(),
});
export type DeadLetter = z.infer<typeof deadLetterSchema>;

type Summary = Omit<DeadLetter, "body">;

const MAX_SUMMARY_REASON = 500;

const keyOf = (id: string) => `${DEAD_LETTER_PREFIX}${id}`;

export async function storeDeadLetter(kv: KVNamespace, letter: DeadLetter): Promise<void> {
  const { body: _body, ...summary } = letter;
  // The summary rides in the key's metadata so that a listing needs no extra reads. KV caps metadata
  // at 1024 bytes, so a long reason is shortened there; the letter itself keeps it whole.
  const reason =
    summary.reason.length > MAX_SUMMARY_REASON ? `${summary.reason.slice(0, MAX_SUMMARY_REASON)}...` : summary.reason;
  await kv.put(keyOf(letter.id), JSON.stringify(letter), { metadata: { ...summary, reason } satisfies Summary });
}

export async function getDeadLetter(kv: KVNamespace, id: string): Promise<DeadLetter | undefined> {
  const text = await kv.get(keyOf(id));
  if (text === null) return undefined;
  return deadLetterSchema.parse(JSON.parse(text));
}

export async function deleteDeadLetter(kv: KVNamespace, id: string): Promise<void> {
  await kv.delete(keyOf(id));
}

export async function listDeadLetters(
  kv: KVNamespace,
  options: { cursor?: string; limit?: number } = {},
): Promise<{ letters: Summary[]; cursor?: string }> {
  const page = await kv.list<Summary>({
    prefix: DEAD_LETTER_PREFIX,
    cursor: options.cursor,
    limit: options.limit ?? 100,
  });
  const letters = page.keys.map(
    (key) => key.metadata ?? ({ id: key.name.slice(DEAD_LETTER_PREFIX.length) } as Summary),
  );
  return page.list_complete ? { letters } : { letters, cursor: page.cursor };
}

/** Sends a dead letter's body back to the queue it came from; 503 when that queue is not bound. */
export async function sendBack(env: Env, letter: Pick<DeadLetter, "id" | "source" | "body">): Promise<void> {
  const queue = letter.source === "segment" ? env.SEGMENT_QUEUE : env.VERO_QUEUE;
  const binding = letter.source === "segment" ? "SEGMENT_QUEUE" : "VERO_QUEUE";
  if (!queue) throw new BridgeError(503, "not_configured", `${binding} is not bound: cannot re-drive ${letter.id}`);
  await queue.send(letter.body, { contentType: "json" });
}

/** Re-drives a dead letter of the ledger: back to its queue, then deleted. */
export async function redriveDeadLetter(env: Env, letter: ledger.DeadLetter): Promise<void> {
  if (!env.LEDGER)
    throw new BridgeError(503, "not_configured", "the LEDGER D1 database is not bound (see wrangler.toml)");
  // Sent before the delete: a crash in between leaves a duplicate to delete, never a loss.
  await sendBack(env, letter);
  await ledger.deleteDeadLetter(env.LEDGER, letter.id);
  log("info", "dead letter re-driven", { id: letter.id, source: letter.source });
}
