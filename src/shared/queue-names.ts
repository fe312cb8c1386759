/**
 * The queues, free of Workers types so that Node-side code can import them
 * too. A queue's name is the Worker's name and what it carries, so every
 * environment in wrangler.toml has its own four and the consumer is chosen
 * by the ending (test/node/wrangler-config.test.ts checks the names).
 */
import { chunkWithin } from "./json.ts";

const QUEUE_SUFFIXES = {
  segment: "-segment",
  vero: "-vero",
  segmentDeadLetters: "-segment-dlq",
  veroDeadLetters: "-vero-dlq",
} as const;

export type QueueRole = keyof typeof QUEUE_SUFFIXES;

/** The queues of a Worker named `workerName`. */
export const queueNames = (workerName: string): Record<QueueRole, string> => ({
  segment: `${workerName}${QUEUE_SUFFIXES.segment}`,
  vero: `${workerName}${QUEUE_SUFFIXES.vero}`,
  segmentDeadLetters: `${workerName}${QUEUE_SUFFIXES.segmentDeadLetters}`,
  veroDeadLetters: `${workerName}${QUEUE_SUFFIXES.veroDeadLetters}`,
});

/** The queues of wrangler.toml's top-level (production) Worker. */
export const QUEUE_NAMES = queueNames("vero-segment-bridge");

/** What the queue `name` carries, read from its ending; undefined for a queue of none of these names. */
export function queueRole(name: string): QueueRole | undefined {
  return (Object.keys(QUEUE_SUFFIXES) as QueueRole[]).find((role) => name.endsWith(QUEUE_SUFFIXES[role]));
}

/**
 * Cloudflare Queues' limits, in Cloudflare's units (1 KB = 1,000 bytes).
 * Each message counts up to about 100 bytes of metadata besides its body
 * towards both the message and the batch limits. Miniflare enforces looser
 * ones (288,000 bytes per batch), so the bridge checks these itself.
 */
export const QUEUE_LIMITS = {
  messageBytes: 128_000,
  batchBytes: 256_000,
  batchMessages: 100,
  metadataBytes: 100,
} as const;

/** What a message with a JSON body of `bodyBytes` counts towards the limits. */
export const queuedBytes = (bodyBytes: number): number => bodyBytes + QUEUE_LIMITS.metadataBytes;

/**
 * `items` split into `sendBatch` calls within Queues' limits, counted as
 * Queues counts them (each message's body and metadata), in order.
 */
export const sendBatchChunks = <T>(items: readonly T[], queuedBytesOf: (item: T) => number): T[][] =>
  chunkWithin(items, queuedBytesOf, { maxItems: QUEUE_LIMITS.batchMessages, maxBytes: QUEUE_LIMITS.batchBytes });

/** wrangler.toml's `max_retries`: a message is delivered at most this many times plus one. */
export const MAX_RETRIES = 100;
