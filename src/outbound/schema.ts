/**
 * Segment's wire format, as its Webhooks destination and its SDKs send it.
 * The wire names live here and nowhere else. Permissive on fields the bridge
 * does not use (Segment adds new ones all the time), strict on the ones a
 * Vero call depends on, so that a bad event is refused before any call.
 */

import * as z from "zod/mini";
import { exceedsDepth, isRecord, MAX_JSON_DEPTH } from "../shared/json.ts";
import { describeIssues } from "../shared/zod.ts";

/** The most events one request may hold: the largest batch Webhooks (Actions) sends. */
export const MAX_BATCH_EVENTS = 4000;

export const SEGMENT_EVENT_TYPES = ["identify", "track", "page", "screen", "group", "alias", "delete"] as const;
export type SegmentEventType = (typeof SEGMENT_EVENT_TYPES)[number];

// Every message is phrased as a predicate so that a problem reads "<path> <message>".
// One check each rather than a union and a record: every event runs them several times, and a union
// builds a result per option, a record a payload per key.
const id = z.custom<string | number>(
  (value) => typeof value === "string" || (typeof value === "number" && Number.isFinite(value)),
  { error: "must be a string or a number" },
);

/** Segment's own limit on a messageId; longer ones cannot come from Segment, and would bloat the ledger's lookups. */
export const MAX_MESSAGE_ID_LENGTH = 100;

const messageId = z.custom<string | number>(
  (value) =>
    (typeof value === "string" && value.length <= MAX_MESSAGE_ID_LENGTH) ||
    (typeof value === "number" && Number.isFinite(value)),
  {
    error: (issue) =>
      typeof issue.input === "string"
        ? `must be at most ${MAX_MESSAGE_ID_LENGTH} characters`
        : "must be a string or a number",
  },
);

/**
 * What zod's record accepts as an object (its util.isPlainObject, written out: reaching it through
 * `z.core` would make the bundler keep all of zod's core namespace, locales included).
 */
function isRecordLikeZod(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const ctor: unknown = (value as { constructor?: unknown }).constructor;
  if (typeof ctor !== "function") return true;
  const prototype: unknown = ctor.prototype;
  if (typeof prototype !== "object" || prototype === null || Array.isArray(prototype)) return false;
  return Object.hasOwn(prototype, "isPrototypeOf");
}

/** As zod's record of unknown values: a plain object, copied without a `__proto__` key. */
const record = z.pipe(
  z.custom<Record<string, unknown>>(isRecordLikeZod, { error: "must be an object" }),
  z.transform((value: Record<string, unknown>) => {
    const copy: Record<string, unknown> = {};
    for (const key of Object.keys(value)) if (key !== "__proto__") copy[key] = value[key];
    return copy;
  }),
);
const stringList = z.custom<string[]>(
  (value) => Array.isArray(value) && value.every((item) => typeof item === "string"),
  { error: "must be an array of strings" },
);

/**
 * `integrations.Vero.tags`: Segment's documented `{ id?, action, values }`,
 * or `{ id?, add?, remove? }`. `tags` is accepted in place of `values`
 * because Segment's own destination read that name.
 */
export const tagsSchema = z
  .strictObject(
    {
      id: z.optional(id),
      action: z.optional(z.enum(["add", "remove"], { error: 'must be "add" or "remove"' })),
      values: z.optional(stringList),
      tags: z.optional(stringList),
      add: z.optional(stringList),
      remove: z.optional(stringList),
    },
    {
      error: (issue) =>
        issue.code === "unrecognized_keys"
          ? `has unknown keys ${issue.keys.join(", ")} (use id, action and values, or add and remove)`
          : "must be an object",
    },
  )
  .check(
    z.superRefine((tags, ctx) => {
      const values = tags.values ?? tags.tags;
      if (tags.action !== undefined) {
        if (values === undefined)
          ctx.addIssue({ code: "custom", path: ["values"], message: "must be an array of strings" });
        if (tags.add !== undefined || tags.remove !== undefined)
          ctx.addIssue({ code: "custom", path: [], message: "mixes action with add/remove: use one form" });
      } else if (values !== undefined) {
        ctx.addIssue({ code: "custom", path: ["action"], message: 'must be "add" or "remove" when values are given' });
      } else if (tags.add === undefined && tags.remove === undefined) {
        ctx.addIssue({ code: "custom", path: [], message: "needs action and values, or add and/or remove" });
      }
    }),
  );

export type SegmentTags = z.output<typeof tagsSchema>;

const integrationsSchema = z.looseObject(
  {
    All: z.optional(z.unknown()),
    // `true`/`false` switch the Vero destination on or off for this event; an object carries
    // its options. Booleans become `{ enabled }` here rather than a union, whose failure
    // would hide which tags field is wrong.
    Vero: z.optional(
      z.pipe(
        z.transform((value: unknown) => (typeof value === "boolean" ? { enabled: value } : value)),
        z.looseObject(
          { enabled: z.optional(z.boolean()), tags: z.optional(tagsSchema) },
          { error: "must be a boolean or an object" },
        ),
      ),
    ),
  },
  { error: "must be an object" },
);

const contextSchema = z.looseObject(
  {
    traits: z.nullish(record),
    userAgent: z.nullish(z.string({ error: "must be a string" })),
    integration: z.nullish(z.looseObject({ name: z.optional(z.unknown()) }, { error: "must be an object" })),
  },
  { error: "must be an object" },
);

export const segmentEventSchema = z.looseObject({
  type: z.enum(SEGMENT_EVENT_TYPES, { error: `must be one of ${SEGMENT_EVENT_TYPES.join(", ")}` }),
  messageId: z.nullish(messageId),
  userId: z.nullish(id),
  anonymousId: z.nullish(id),
  previousId: z.nullish(id),
  event: z.nullish(z.string({ error: "must be a string" })),
  name: z.nullish(z.string({ error: "must be a string" })),
  timestamp: z.nullish(
    z
      .string({ error: "must be an ISO 8601 string" })
      .check(z.refine((value) => !Number.isNaN(Date.parse(value)), { error: "must be an ISO 8601 date" })),
  ),
  traits: z.nullish(record),
  properties: z.nullish(record),
  context: z.nullish(contextSchema),
  integrations: z.nullish(integrationsSchema),
});

export type SegmentEvent = z.output<typeof segmentEventSchema>;

export type ParsedEvent = { ok: true; event: SegmentEvent } | { ok: false; error: string };

/**
 * Validates one event. `impliedType` is the call a `/v1/<call>` path names,
 * used when the event does not say its own type.
 */
export function parseSegmentEvent(input: unknown, impliedType?: SegmentEventType): ParsedEvent {
  if (!isRecord(input)) return { ok: false, error: "event must be a JSON object" };
  // Checked per event, so that one odd event does not cost its batch neighbours their delivery.
  if (exceedsDepth(input))
    return { ok: false, error: `event nests objects or arrays deeper than ${MAX_JSON_DEPTH} levels` };
  const withType = impliedType && !("type" in input) ? { ...input, type: impliedType } : input;
  const result = segmentEventSchema.safeParse(withType);
  if (result.success) return { ok: true, event: result.data };
  return { ok: false, error: describeIssues(result.error) };
}

/** An id as Vero gets it: a number as its string, a string only when it has more than spaces. */
export const idOf = (value: unknown): string | undefined => {
  if (typeof value === "number") return String(value);
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
};

/**
 * The messageId a response reports an event by, read even from an event that
 * failed validation; one over the limit is not echoed, and the event is named by position.
 */
export function messageIdOf(input: unknown): string | null {
  if (typeof input !== "object" || input === null || !("messageId" in input)) return null;
  const value = input.messageId;
  if (typeof value === "string") return value.length <= MAX_MESSAGE_ID_LENGTH ? value : null;
  return typeof value === "number" ? String(value) : null;
}

export type SegmentBody = { ok: true; events: unknown[] } | { ok: false; error: string };

/**
 * The three shapes a request body takes: one event (classic Webhooks,
 * `/v1/<call>`), `{ batch: [...] }` (SDKs), or a JSON array (Webhooks
 * (Actions) batching). A batch's top-level `context` and `integrations`
 * apply to every event that does not set them, as in Segment's HTTP API.
 */
export function parseSegmentBody(raw: string, maxEvents: number = MAX_BATCH_EVENTS): SegmentBody {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, error: "the body is not valid JSON" };
  }
  return segmentEventsOf(json, maxEvents);
}

/** The events of a body already parsed as JSON (see parseSegmentBody). */
export function segmentEventsOf(json: unknown, maxEvents: number = MAX_BATCH_EVENTS): SegmentBody {
  let events: unknown[];
  if (Array.isArray(json)) {
    events = json;
  } else if (typeof json === "object" && json !== null && "batch" in json) {
    if (!Array.isArray(json.batch)) return { ok: false, error: "batch must be an array of events" };
    const shared = json as { context?: unknown; integrations?: unknown };
    events = json.batch.map((event: unknown) => withBatchDefaults(event, shared.context, shared.integrations));
  } else if (typeof json === "object" && json !== null) {
    events = [json];
  } else {
    return { ok: false, error: "the body must be an event, { batch: [...] } or an array of events" };
  }
  if (events.length > maxEvents)
    return { ok: false, error: `the request holds ${events.length} events; at most ${maxEvents} per batch` };
  return { ok: true, events };
}

function withBatchDefaults(event: unknown, context: unknown, integrations: unknown): unknown {
  if (!isRecord(event)) return event;
  const merged: Record<string, unknown> = { ...event };
  if (isRecord(context)) merged.context = { ...context, ...(isRecord(event.context) ? event.context : {}) };
  if (isRecord(integrations))
    merged.integrations = { ...integrations, ...(isRecord(event.integrations) ? event.integrations : {}) };
  return merged;
}
