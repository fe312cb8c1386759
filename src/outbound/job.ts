/**
 * What the Vero queue carries: one job per Segment event, the event's Vero
 * calls in the order they must be made. Versioned, and re-validated by the
 * consumer (a queue body is untrusted input too). `user` is the ordering
 * key: it names the mailbox that delivers the job, in order with the
 * user's other jobs.
 */

import * as z from "zod/mini";
import { type VeroRequest, veroUserId } from "./map.ts";
import "../shared/zod.ts";
import { idOf, type SegmentEvent } from "./schema.ts";

/** The only calls the bridge makes; a body naming another path is malformed. */
export const VERO_CALLS = [
  "POST /users/track",
  "PUT /users/edit",
  "PUT /users/tags/edit",
  "POST /users/unsubscribe",
  "POST /users/resubscribe",
  "POST /users/delete",
  "PUT /users/reidentify",
  "POST /events/track",
] as const;

const veroRequestSchema = z
  .object({
    method: z.enum(["POST", "PUT"]),
    path: z.string(),
    body: z.record(z.string(), z.unknown()),
  })
  .check(
    z.refine((request) => (VERO_CALLS as readonly string[]).includes(`${request.method} ${request.path}`), {
      error: "is not a Vero call the bridge makes",
    }),
  ) satisfies z.ZodMiniType<VeroRequest>;

export const veroJobSchema = z.object({
  /** 2 since the mailboxes; 1 was queued before them, and its recorded calls are in D1's vero_calls. */
  v: z.union([z.literal(1), z.literal(2)]),
  kind: z.literal("vero"),
  /**
   * The job's own id, given by the mailbox that first accepted it and kept
   * by its continuations (a dead letter re-driven): it names the job's dead
   * letter. Optional, so that a consumer of the same version reads a job
   * with or without it.
   */
  id: z.optional(z.string().check(z.minLength(1), z.maxLength(64))),
  /** The Segment event's messageId (or `#<index>` when it had none); kept by continuations. */
  messageId: z.string().check(z.minLength(1)),
  user: z.string().check(z.minLength(1)),
  requests: z.array(veroRequestSchema).check(z.minLength(1)),
  /** How many of the event's calls earlier jobs already made: a continuation's first call. */
  step: z.optional(z.int().check(z.nonnegative())),
  /** When the route enqueued the event (ms); kept by continuations, so retried jobs sort back into place. */
  at: z.optional(z.int().check(z.nonnegative())),
  /** The job's place among the jobs of its request, which share one `at`. */
  seq: z.optional(z.int().check(z.nonnegative())),
});

export type VeroJob = z.infer<typeof veroJobSchema>;

/**
 * The user whose calls must stay in order. An alias is ordered with the id
 * it renames (the events before it carry that id); otherwise the userId,
 * then the email (identify and group may go by email alone), then an
 * unsubscribe's `properties.id`; with VERO_ANONYMOUS_IDS, the anonymousId
 * that stands in for the userId.
 */
export function orderingKey(event: SegmentEvent, fallback: string, anonymousIds = false): string {
  if (event.type === "alias") return idOf(event.previousId) ?? idOf(event.userId) ?? fallback;
  const email = event.traits?.email ?? event.context?.traits?.email;
  return veroUserId(event, anonymousIds) ?? idOf(email) ?? idOf(event.properties?.id) ?? fallback;
}

/**
 * The order of one user's jobs: by enqueue time across requests, then by
 * sequence within a request. A job without `at` (an older message) goes by
 * the time Queues received it.
 */
export function jobOrder(
  a: { queued: { timestamp: Date }; job: Pick<VeroJob, "at" | "seq"> },
  b: { queued: { timestamp: Date }; job: Pick<VeroJob, "at" | "seq"> },
): number {
  const at = (entry: typeof a) => entry.job.at ?? entry.queued.timestamp.getTime();
  return at(a) - at(b) || (a.job.seq ?? 0) - (b.job.seq ?? 0);
}
