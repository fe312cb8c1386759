/**
 * One Segment event in, the Vero calls it stands for out, in order: the
 * behaviour of Segment's own Vero destination (segment-boneyard/integration-vero),
 * as docs/reference.md describes it. Pure: no I/O, no clock (the receipt time comes in),
 * and no credential (the sender adds it), so a queue consumer can replay it.
 */
import { INTEGRATION_NAME } from "../shared/version.ts";
import { idOf, type SegmentEvent, type SegmentEventType, type SegmentTags } from "./schema.ts";

export interface VeroRequest {
  method: "POST" | "PUT";
  /** Under VERO_API_URL, e.g. `/users/track`. */
  path: string;
  body: Record<string, unknown>;
}

export type MappedEvent =
  | { outcome: "send"; requests: VeroRequest[] }
  /** Acknowledged without a call: the loop guard, or the event switched Vero off. */
  | { outcome: "skip"; reason: string }
  | { outcome: "invalid"; error: string };

export interface MapOptions {
  /** Stands in for an event without a `timestamp`. */
  receivedAt: Date;
  /** VERO_ANONYMOUS_IDS: an event without a userId (or, for identify and group, an email) goes by its anonymousId. */
  anonymousIds?: boolean;
}

// Loose on purpose: a userId shaped like `x@y.z` is taken as an email; Vero validates the rest.
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

const stringField = (record: Record<string, unknown> | null | undefined, key: string): string | undefined => {
  const value = record?.[key];
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
};

/** Drops absent fields instead of sending `null`: Vero treats a present `email: null` as a value. */
function compact(body: Record<string, unknown>): Record<string, unknown> {
  // The keys are this module's own, so for...in meets no inherited ones.
  const out: Record<string, unknown> = {};
  for (const key in body) {
    const value = body[key];
    if (value !== undefined && value !== null) out[key] = value;
  }
  return out;
}

const invalid = (error: string): MappedEvent => ({ outcome: "invalid", error });

/** Vero refuses ids, emails and event names longer than this. */
export const VERO_MAX_FIELD_LENGTH = 255;

/**
 * The first of `fields` (source name and the value about to be sent) that
 * Vero would refuse for its length. Caught here, the 400 names the event's
 * own field and no call is made; from Vero it would name Vero's field, after
 * the main call of the event may already have succeeded.
 */
function overLong(...fields: [name: string, value: string | undefined][]): string | undefined {
  const found = fields.find(([, value]) => value !== undefined && value.length > VERO_MAX_FIELD_LENGTH);
  return found && `${found[0]} is longer than ${VERO_MAX_FIELD_LENGTH} characters (Vero's limit)`;
}

/** Only identify and group may go by email alone; the message says which is missing. */
function noUserId(type: SegmentEventType, event: SegmentEvent): string {
  const email = stringField(event.context?.traits, "email") ?? stringField(event.traits, "email");
  return email === undefined
    ? "no userId or email"
    : `no userId: ${type} needs one (only identify and group may go by email alone)`;
}

const contextEmail = (event: SegmentEvent) => stringField(event.context?.traits, "email");

const recordAt = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;

/**
 * The device's push channel, as RudderStack's Vero destination builds it from
 * `context.device` and `context.os`, in the shape Vero's identify documents
 * (`channels: [{ type, address, platform }]`). Vero needs both the token and
 * the platform, so a channel missing either is left out rather than sent half.
 */
function pushChannel(context: SegmentEvent["context"]): Record<string, unknown> | undefined {
  const device = recordAt(context?.device);
  const address = stringField(device, "token");
  const platform = stringField(recordAt(context?.os), "name");
  if (address === undefined || platform === undefined) return undefined;
  // Vero's own SDKs send "ios" and "android"; Segment's libraries report "iOS" and "Android".
  return compact({ type: "push", address, platform: platform.toLowerCase(), device: stringField(device, "name") });
}

/**
 * The id Vero knows the user by: the userId, else (opt-in) the anonymousId,
 * except that identify and group carrying an email go by the email as before.
 */
export function veroUserId(event: SegmentEvent, anonymousIds = false): string | undefined {
  const userId = idOf(event.userId);
  if (userId !== undefined || !anonymousIds) return userId;
  if (event.type === "alias") return undefined;
  const byEmail =
    (event.type === "identify" || event.type === "group") &&
    (stringField(event.traits, "email") ?? contextEmail(event)) !== undefined;
  return byEmail ? undefined : idOf(event.anonymousId);
}

function skipReason(event: SegmentEvent): string | undefined {
  if (event.context?.integration?.name === INTEGRATION_NAME)
    return `loop guard: context.integration.name is ${INTEGRATION_NAME} (the event came from Vero through this bridge)`;
  const vero = event.integrations?.Vero;
  if (vero?.enabled === false) return "integrations.Vero is false";
  if (event.integrations?.All === false && vero === undefined)
    return "integrations.All is false and integrations.Vero is not enabled";
  return undefined;
}

/** Unix seconds of the event's time, the receipt time standing in for a missing timestamp. */
function extras(event: SegmentEvent, receivedAt: Date) {
  // The schema has already refused a timestamp that does not parse.
  const millis = event.timestamp ? Date.parse(event.timestamp) : receivedAt.getTime();
  return { created_at: Math.floor(millis / 1000), source: "segment" };
}

function eventTrack(
  name: string,
  userId: string,
  event: SegmentEvent,
  data: Record<string, unknown>,
  receivedAt: Date,
): VeroRequest {
  return {
    method: "POST",
    path: "/events/track",
    body: {
      identity: compact({ id: userId, email: contextEmail(event) }),
      event_name: name,
      data,
      extras: extras(event, receivedAt),
    },
  };
}

/** The tags call that follows the main one, or the reason the tags cannot be sent. */
function tagsRequest(tags: SegmentTags, userId: string | undefined, email: string | undefined): VeroRequest | string {
  const target = idOf(tags.id) ?? userId;
  if (target === undefined && email === undefined)
    return "integrations.Vero.tags needs an id when the event has no userId or email";
  const tooLong = overLong(["integrations.Vero.tags.id", idOf(tags.id)]);
  if (tooLong) return tooLong;
  const values = tags.values ?? tags.tags;
  const lists = tags.action ? { [tags.action]: values } : { add: tags.add, remove: tags.remove };
  return {
    method: "PUT",
    path: "/users/tags/edit",
    body: compact({ ...(target === undefined ? { email } : { id: target }), ...lists }),
  };
}

/**
 * Identify and group may go by email alone: `traits.email`, else a userId
 * shaped like an email. The email to send, or why the event cannot go.
 */
function userEmail(
  traits: Record<string, unknown>,
  userId: string | undefined,
): { value: string | undefined } | string {
  const value = stringField(traits, "email") ?? (userId && EMAIL.test(userId) ? userId : undefined);
  if (userId === undefined && value === undefined) return "no userId or email";
  return overLong(["userId", userId], ["traits.email", value]) ?? { value };
}

function mainRequests(event: SegmentEvent, userId: string | undefined, receivedAt: Date): VeroRequest[] | string {
  const traits = event.traits ?? {};
  const properties = event.properties ?? {};
  switch (event.type) {
    case "identify": {
      const email = userEmail(traits, userId);
      if (typeof email !== "object") return email;
      // As Segment's destination did: the userId in the traits as `id`, the client's user agent beside them.
      const userAgent = event.context?.userAgent;
      const data: Record<string, unknown> = { ...traits };
      if (userId !== undefined) data.id = userId;
      if (userAgent) data.userAgent = userAgent;
      // Vero's reserved user attributes; a trait of the same name is the sender's own choice and stays.
      const timezone = stringField(event.context, "timezone");
      const locale = stringField(event.context, "locale");
      if (timezone !== undefined && data.timezone === undefined) data.timezone = timezone;
      if (locale !== undefined && data.language === undefined) data.language = locale;
      const channel = pushChannel(event.context);
      return [
        {
          method: "POST",
          path: "/users/track",
          body: compact({ id: userId, email: email.value, channels: channel && [channel], data }),
        },
      ];
    }
    case "group": {
      const email = userEmail(traits, userId);
      if (typeof email !== "object") return email;
      const { email: _email, ...group } = traits;
      return [
        { method: "PUT", path: "/users/edit", body: compact({ id: userId, email: email.value, changes: { group } }) },
      ];
    }
    case "track": {
      const name = event.event?.trim();
      if (!name) return "track needs an event name";
      const lowered = name.toLowerCase();
      // Segment's destination matched "unsubscribe" anywhere in the name; "resubscribe" never contains it.
      const subscription = lowered.includes("unsubscribe")
        ? "/users/unsubscribe"
        : lowered.includes("resubscribe")
          ? "/users/resubscribe"
          : undefined;
      if (subscription) {
        if (properties.id !== undefined && idOf(properties.id) === undefined)
          return "properties.id must be a non-empty string or a number";
        const target = idOf(properties.id) ?? userId;
        if (target === undefined) return noUserId("track", event);
        const tooLong = overLong([idOf(properties.id) === undefined ? "userId" : "properties.id", target]);
        if (tooLong) return tooLong;
        return [{ method: "POST", path: subscription, body: { id: target, extras: extras(event, receivedAt) } }];
      }
      if (userId === undefined) return noUserId("track", event);
      const tooLong = overLong(["userId", userId], ["event", name], ["context.traits.email", contextEmail(event)]);
      if (tooLong) return tooLong;
      return [eventTrack(name, userId, event, { ...properties }, receivedAt)];
    }
    case "page":
    case "screen": {
      if (userId === undefined) return noUserId(event.type, event);
      const tooLong = overLong(["userId", userId], ["context.traits.email", contextEmail(event)]);
      if (tooLong) return tooLong;
      const name = event.type === "page" ? "viewed_page" : "viewed_screen";
      return [eventTrack(name, userId, event, { ...properties }, receivedAt)];
    }
    case "alias": {
      const previousId = idOf(event.previousId);
      if (previousId === undefined) return "alias needs a previousId";
      if (userId === undefined) return "alias needs a userId (the new id)";
      const tooLong = overLong(["previousId", previousId], ["userId", userId]);
      if (tooLong) return tooLong;
      return [{ method: "PUT", path: "/users/reidentify", body: { id: previousId, new_id: userId } }];
    }
    case "delete": {
      if (userId === undefined) return noUserId("delete", event);
      const tooLong = overLong(["userId", userId]);
      if (tooLong) return tooLong;
      return [{ method: "POST", path: "/users/delete", body: { id: userId } }];
    }
  }
}

/**
 * The Vero calls for one validated event, in the order they must be made:
 * the main call, then the tags edit (Vero can only tag a user that exists).
 */
export function mapSegmentEvent(event: SegmentEvent, { receivedAt, anonymousIds }: MapOptions): MappedEvent {
  const reason = skipReason(event);
  if (reason) return { outcome: "skip", reason };

  // Numeric ids go out as strings, so that 123 and "123" are one Vero user.
  const userId = veroUserId(event, anonymousIds);
  const main = mainRequests(event, userId, receivedAt);
  if (typeof main === "string") return invalid(main);

  const tags = event.integrations?.Vero?.tags;
  // A deleted user has nothing left to tag.
  if (!tags || event.type === "delete") return { outcome: "send", requests: main };
  const email = main[0]?.body.email;
  const tagEdit = tagsRequest(tags, userId, typeof email === "string" ? email : undefined);
  if (typeof tagEdit === "string") return invalid(tagEdit);
  return { outcome: "send", requests: [...main, tagEdit] };
}
