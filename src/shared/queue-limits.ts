/**
 * Cloudflare Queues' limits, and sending within them. Free of Workers types,
 * as the queue names are, so that Node-side code can import them too.
 */
import { chunkWithin } from "./json.ts";

/**
 * The limits, in Cloudflare's units (1 KB = 1,000 bytes).
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
