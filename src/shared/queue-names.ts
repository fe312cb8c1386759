/**
 * The queues, free of Workers types so that Node-side code can import them
 * too. A queue's name is the Worker's name and what it carries, so every
 * environment in wrangler.toml has its own four and the consumer is chosen
 * by the ending (test/node/wrangler-config.test.ts checks the names).
 */
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
