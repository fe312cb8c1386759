/**
 * The queues' names and retry budget, free of Workers types so that Node-side
 * code can import them too. Kept in step with wrangler.toml by
 * test/node/wrangler-config.test.ts.
 */
export const QUEUE_NAMES = {
  segment: "vero-segment-bridge-segment",
  vero: "vero-segment-bridge-vero",
  segmentDeadLetters: "vero-segment-bridge-segment-dlq",
  veroDeadLetters: "vero-segment-bridge-vero-dlq",
} as const;

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

/** wrangler.toml's `max_retries`: a message is delivered at most this many times plus one. */
export const MAX_RETRIES = 100;
