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

/** wrangler.toml's `max_retries`: a message is delivered at most this many times plus one. */
export const MAX_RETRIES = 24;
