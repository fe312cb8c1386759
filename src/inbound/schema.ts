/**
 * Vero's webhook payloads as they arrive on the wire. Wire field names
 * (`trigger-event`, `campaign_title`, `_tags`, ...) appear here and nowhere
 * else; map.ts reads the parsed result.
 *
 * Vero documents a handful of samples, and real payloads drift from them
 * (ids as numbers or strings, renamed campaign keys, fields added by Vero
 * 2), so every field is optional except `type` and a usable user. Scalars
 * are accepted in any JSON scalar type and read as text; a field of a type
 * that cannot mean anything (an object where a name belongs) is refused
 * with a message naming it, rather than dropped without a word.
 */

import * as z from "zod/mini";
import { exceedsDepth, isRecord, MAX_JSON_DEPTH } from "../shared/json.ts";
import { describeIssue, issuePath } from "../shared/zod.ts";

/** The email events the bridge forwards, by their wire `type`. */
export const VERO_EMAIL_TYPES = [
  "sent",
  "delivered",
  "opened",
  "clicked",
  "bounced",
  "unsubscribed",
  "complained",
  "failed",
  "converted",
  "resubscribed",
] as const;
export type VeroEmailType = (typeof VERO_EMAIL_TYPES)[number];

export const VERO_USER_TYPES = ["user_created", "user_updated"] as const;
export type VeroUserType = (typeof VERO_USER_TYPES)[number];

const isEmailType = (type: string): type is VeroEmailType => (VERO_EMAIL_TYPES as readonly string[]).includes(type);
const isUserType = (type: string): type is VeroUserType => (VERO_USER_TYPES as readonly string[]).includes(type);

/** Absent, null and blank all mean "Vero did not say". */
const blankToUndefined = (value: string) => {
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
};

const REFUSED = Symbol("refused");

/**
 * A field read by one plain function: absent skips it, null means absent,
 * and `read` converts the value or refuses it with `message`. One schema
 * node per field rather than optional, union and transform nodes: this
 * runs on every field of every webhook, and a union tries each option in
 * turn, building a result for each.
 */
const field = <T>(message: string, read: (value: unknown) => T | typeof REFUSED) =>
  z.optional(
    z.transform((value: unknown, ctx) => {
      if (value === null) return undefined;
      const out = read(value);
      if (out !== REFUSED) return out;
      ctx.issues.push({ code: "custom", message, input: value });
      return z.NEVER;
    }),
  );

const isNumber = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);

const text = field("must be a string or a number", (value) =>
  typeof value === "string"
    ? blankToUndefined(value)
    : isNumber(value) || typeof value === "boolean"
      ? blankToUndefined(String(value))
      : REFUSED,
);

/** Ids arrive as numbers (Vero 1 samples) or strings (API-created users); Segment wants strings. */
const id = field("must be a string or a number", (value) =>
  typeof value === "string" ? blankToUndefined(value) : isNumber(value) ? String(value) : REFUSED,
);

/** `tags` is one comma-separated string in the payloads seen so far; an array is taken as well. */
const tags = field("must be a comma-separated string or an array of strings", (value) => {
  let parts: string[];
  if (typeof value === "string") parts = value.split(",");
  else if (Array.isArray(value) && value.every((item) => typeof item === "string" || isNumber(item)))
    parts = value.map(String);
  else return REFUSED;
  const kept = parts.map((part) => part.trim()).filter((part) => part.length > 0);
  return kept.length > 0 ? kept : undefined;
});

/**
 * Unix seconds as Vero sends them; a numeric string or an ISO 8601 string
 * is taken too. Milliseconds are told apart by size (seconds reach 1e12 only
 * in the year 33658). Output: an ISO 8601 string.
 */
function readTime(value: unknown): string | undefined | typeof REFUSED {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") {
    if (value.trim() === "") return undefined;
  } else if (!isNumber(value)) return REFUSED;
  const numeric = typeof value === "number" ? value : /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : undefined;
  const ms = numeric === undefined ? Date.parse(value as string) : numeric >= 1e12 ? numeric : numeric * 1000;
  const date = new Date(ms);
  return !Number.isFinite(ms) || Number.isNaN(date.getTime()) ? REFUSED : date.toISOString();
}

const time = field("must be Unix seconds or an ISO 8601 time", readTime);

const user = z.looseObject({ id, email: text });

const campaign = z.looseObject({
  id,
  type: text,
  name: text,
  campaign_title: text,
  subject: text,
  email_subject: text,
  variation: text,
  variation_name: text,
  "trigger-event": text,
  permalink: text,
  message_id: text,
  group: text,
  channel: text,
  sent_to: text,
  tags,
});

const triggeringEvent = z.looseObject({ name: text, triggered_at: time });

const emailEvent = z.looseObject({
  type: z.enum(VERO_EMAIL_TYPES),
  user,
  campaign: z.nullish(campaign),
  message_id: text,
  user_agent: text,
  sender_ip: text,
  tags,
  channel: text,
  sent_to: text,
  event: z.nullish(triggeringEvent),
  link_url: text,
  url: text,
  link: text,
  bounce_type: text,
  bounce_code: text,
  bounce_message: text,
});

const userEvent = z.looseObject({
  type: z.enum(VERO_USER_TYPES),
  user,
  changes: z.nullish(z.record(z.string(), z.unknown())),
});

function parseShape(candidate: unknown, kind: "email" | "user") {
  return kind === "email" ? emailEvent.safeParse(candidate) : userEvent.safeParse(candidate);
}

export type VeroEmailEvent = z.output<typeof emailEvent> & { occurredAt: string | undefined };
export type VeroUserEvent = z.output<typeof userEvent> & { occurredAt: string | undefined };
export type VeroUser = z.output<typeof user>;
export type VeroCampaign = z.output<typeof campaign>;

export interface Problem {
  /** One sentence naming what is wrong, for the 400's `message`. */
  message: string;
  issues: { path: string; message: string }[];
}

export type ParsedWebhook =
  | { kind: "email"; webhook: VeroEmailEvent }
  | { kind: "user"; webhook: VeroUserEvent }
  | { kind: "unknown"; type: string }
  | { kind: "invalid"; problem: Problem };

const describe = (value: unknown) => (Array.isArray(value) ? "an array" : value === null ? "null" : typeof value);

const invalid = (message: string, issues: Problem["issues"] = []): ParsedWebhook => ({
  kind: "invalid",
  problem: { message, issues },
});

function fromZod(error: z.core.$ZodError): ParsedWebhook {
  const issues = error.issues.map((issue) => ({ path: issuePath(issue), message: issue.message }));
  const first = error.issues[0];
  return invalid(first ? describeIssue(first, "payload") : "payload is not a Vero webhook", issues);
}

/**
 * Reads a JSON value as a Vero webhook. The type is settled first, so a
 * type the bridge does not know is reported as such (and acknowledged by
 * the route) whatever the rest of its payload looks like.
 */
export function parseVeroWebhook(json: unknown): ParsedWebhook {
  if (!isRecord(json)) return invalid(`body must be a JSON object, got ${describe(json)}`);

  const rawType = json.type;
  let type: string;
  if (rawType === undefined || rawType === null || (typeof rawType === "string" && rawType.trim() === "")) {
    // Some user_updated webhooks carry only `user` and `changes`.
    if (!isRecord(json.changes)) return invalid("no type: the payload has no `type` (and no `changes`)");
    type = "user_updated";
  } else if (typeof rawType !== "string") {
    return invalid(`type must be a string, got ${describe(rawType)}`);
  } else {
    type = rawType.trim();
  }

  if (!isEmailType(type) && !isUserType(type)) return { kind: "unknown", type };
  // Before anything walks the payload: the messageId's canonical form recurses through all of it.
  // (An unknown type is acknowledged whatever its shape; nothing walks it.)
  if (exceedsDepth(json)) return invalid(`payload nests objects or arrays deeper than ${MAX_JSON_DEPTH} levels`);

  if (!isRecord(json.user)) {
    return invalid(
      json.user === undefined
        ? "no user: the payload has no `user`"
        : `user must be an object, got ${describe(json.user)}`,
    );
  }

  // Copied only when the type was trimmed or implied: the schema checks `type` against the list.
  const candidate = json.type === type ? json : { ...json, type };
  const occurredAt = readTime(json[`${type}_at`]);
  if (occurredAt === REFUSED) {
    return invalid(`${type}_at must be Unix seconds or an ISO 8601 time`, [
      { path: `${type}_at`, message: "must be Unix seconds or an ISO 8601 time" },
    ]);
  }

  const parsed = parseShape(candidate, isEmailType(type) ? "email" : "user");
  if (!parsed.success) return fromZod(parsed.error);

  const { id: userId, email } = parsed.data.user;
  if (userId === undefined && email === undefined) {
    return invalid("no user id or email: `user` needs an `id` or an `email`", [
      { path: "user", message: "needs an id or an email" },
    ]);
  }

  // zod builds a fresh object, so it takes the time in place of a copy.
  const webhook: Record<string, unknown> = parsed.data;
  webhook.occurredAt = occurredAt;
  return isEmailType(type)
    ? { kind: "email", webhook: webhook as VeroEmailEvent }
    : { kind: "user", webhook: webhook as VeroUserEvent };
}
