/**
 * What the Segment queue carries: one mapped Segment message per queue
 * message, versioned so that a later format can tell old messages apart
 * (messages wait in the queue and in the dead-letter store across deploys).
 * The consumer re-validates every body: a queue body is untrusted input too
 * (a re-drive from an older version, a message sent by hand).
 */
import * as z from "zod/mini";
import "../shared/zod.ts";
import type { SegmentMessage } from "./map.ts";

const nonEmpty = z.string().check(z.minLength(1));

const context = z.object({
  integration: z.object({ name: z.string(), version: z.string() }),
  traits: z.optional(z.object({ email: z.string() })),
  userAgent: z.optional(z.string()),
});

const base = {
  messageId: nonEmpty,
  timestamp: nonEmpty,
  context,
  integrations: z.object({ Vero: z.literal(false) }),
};

const identity = z.union([
  z.object({ userId: nonEmpty, anonymousId: z.optional(z.undefined()) }),
  z.object({ anonymousId: nonEmpty, userId: z.optional(z.undefined()) }),
]);

const track = z.intersection(
  z.object({
    ...base,
    type: z.literal("track"),
    event: nonEmpty,
    properties: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
  }),
  identity,
);

const identify = z.intersection(
  z.object({ ...base, type: z.literal("identify"), traits: z.record(z.string(), z.unknown()) }),
  identity,
);

export const segmentJobSchema = z.object({
  v: z.literal(1),
  kind: z.literal("segment"),
  message: z.union([track, identify]) satisfies z.ZodMiniType<SegmentMessage>,
});

export type SegmentJob = z.infer<typeof segmentJobSchema>;

export const segmentJob = (message: SegmentMessage): SegmentJob => ({ v: 1, kind: "segment", message });

/**
 * Segment refuses an event over 32 KB, measured with what analytics-node
 * adds (context.library, _metadata, the type); this keeps 1 KB for those.
 * Such an event can never be delivered, so the route refuses it up front.
 */
export const MAX_SEGMENT_MESSAGE_BYTES = 32 * 1024 - 1024;
