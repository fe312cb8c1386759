/**
 * Vero webhook in, Segment message out: one pure function, no I/O, no
 * clock (the receipt time is passed in), so every mapping decision can be
 * tested without a network and a queue consumer can reuse it.
 */
import { INTEGRATION_NAME, VERSION } from "../shared/version.ts";
import { veroMessageId } from "./message-id.ts";
import {
  type Problem,
  parseVeroWebhook,
  type VeroEmailEvent,
  type VeroEmailType,
  type VeroUser,
  type VeroUserEvent,
} from "./schema.ts";

/** The names Vero's own Segment source uses, so existing tracking plans keep working. */
export const EMAIL_EVENT_NAMES: Record<VeroEmailType, string> = {
  sent: "Email Sent",
  delivered: "Email Delivered",
  opened: "Email Opened",
  clicked: "Email Link Clicked",
  bounced: "Email Bounced",
  unsubscribed: "Email Unsubscribed",
  complained: "Email Marked as Spam",
  failed: "Email Failed",
  converted: "Email Converted",
  resubscribed: "Email Resubscribed",
};

export interface SegmentContext {
  /** The loop marker: the outbound side acknowledges events carrying it without calling Vero. */
  integration: { name: string; version: string };
  traits?: { email: string };
  userAgent?: string;
}

/** Segment's identity rule: a userId, or (Vero users without an id) the email as anonymousId. */
export type SegmentIdentity = { userId: string; anonymousId?: undefined } | { anonymousId: string; userId?: undefined };

interface MessageBase {
  messageId: string;
  /** ISO 8601. */
  timestamp: string;
  context: SegmentContext;
  /** Keeps Segment's own Vero destination from echoing the event back to Vero. */
  integrations: { Vero: false };
}

export type SegmentTrack = MessageBase &
  SegmentIdentity & {
    type: "track";
    event: string;
    properties: Record<string, string | string[]>;
  };

export type SegmentIdentify = MessageBase &
  SegmentIdentity & {
    type: "identify";
    traits: Record<string, unknown>;
  };

export type SegmentMessage = SegmentTrack | SegmentIdentify;

export type MappedWebhook =
  | { kind: "message"; message: SegmentMessage }
  | { kind: "ignored"; reason: string; type: string }
  | { kind: "invalid"; problem: Problem };

export interface MapOptions {
  /** Used as the timestamp when the webhook carries no `<type>_at`. */
  receivedAt: Date;
}

function identityOf(user: VeroUser): SegmentIdentity {
  if (user.id !== undefined) return { userId: user.id };
  // parseVeroWebhook refuses a user with neither, so the email is there.
  return { anonymousId: user.email as string };
}

function contextOf(user: VeroUser, userAgent?: string): SegmentContext {
  const context: SegmentContext = { integration: { name: INTEGRATION_NAME, version: VERSION } };
  if (user.email !== undefined) context.traits = { email: user.email };
  if (userAgent !== undefined) context.userAgent = userAgent;
  return context;
}

/** Sets a property only when Vero sent the underlying field: Segment's Email spec wants each only when present. */
function put(properties: Record<string, string | string[]>, name: string, value: string | string[] | undefined): void {
  if (value !== undefined) properties[name] = value;
}

function emailProperties(webhook: VeroEmailEvent): Record<string, string | string[]> {
  const campaign = webhook.campaign ?? undefined;
  const properties: Record<string, string | string[]> = {};
  put(properties, "email_id", webhook.message_id ?? campaign?.message_id);
  put(properties, "email_subject", campaign?.subject ?? campaign?.email_subject);
  put(properties, "campaign_id", campaign?.id);
  put(properties, "campaign_name", campaign?.name ?? campaign?.campaign_title);
  put(properties, "campaign_type", campaign?.type);
  put(properties, "campaign_variation", campaign?.variation ?? campaign?.variation_name);
  put(properties, "campaign_permalink", campaign?.permalink);
  put(properties, "campaign_trigger_event", campaign?.["trigger-event"]);
  put(properties, "campaign_tags", campaign?.tags ?? webhook.tags);
  put(properties, "campaign_group", campaign?.group);
  put(properties, "channel", campaign?.channel ?? webhook.channel);
  put(properties, "link_url", webhook.link_url ?? webhook.url ?? webhook.link);
  put(properties, "bounce_type", webhook.bounce_type);
  put(properties, "bounce_code", webhook.bounce_code);
  put(properties, "bounce_message", webhook.bounce_message);
  put(properties, "event_name", webhook.event?.name);
  // Beyond Segment's Email spec: Vero sends them, the operator may want them, and dropping them loses data.
  put(properties, "event_triggered_at", webhook.event?.triggered_at);
  put(properties, "sent_to", campaign?.sent_to ?? webhook.sent_to);
  put(properties, "sender_ip", webhook.sender_ip);
  return properties;
}

/** The user's attributes, except `id` (which is the userId); and for updates the changes, `_tags` as `tags`. */
function userTraits(webhook: VeroUserEvent): Record<string, unknown> {
  const { id: _id, ...attributes } = webhook.user;
  const traits: Record<string, unknown> = { ...attributes };
  for (const [key, value] of Object.entries(webhook.changes ?? {})) {
    traits[key === "_tags" ? "tags" : key] = value;
  }
  // A blank email was read as absent; do not send the blank as a trait either.
  if (webhook.user.email === undefined) delete traits.email;
  else traits.email = webhook.user.email;
  return traits;
}

/**
 * Maps one Vero webhook (parsed JSON, anything at all) to the Segment
 * message to send, or says why nothing should be sent: a type the bridge
 * does not forward (`ignored`, answered 2xx so Vero stops retrying) or a
 * payload that can never become a message (`invalid`, answered 400).
 */
export function mapVeroWebhook(json: unknown, options: MapOptions): MappedWebhook {
  const parsed = parseVeroWebhook(json);
  if (parsed.kind === "invalid") return parsed;
  if (parsed.kind === "unknown")
    return { kind: "ignored", type: parsed.type, reason: `Vero type "${parsed.type}" is not forwarded to Segment` };

  const { webhook } = parsed;
  // What every message carries, whichever call it is.
  const common = {
    ...identityOf(webhook.user),
    timestamp: webhook.occurredAt ?? options.receivedAt.toISOString(),
    integrations: { Vero: false } as const,
    messageId: veroMessageId(json),
  };
  if (parsed.kind === "email") {
    const email = parsed.webhook;
    return {
      kind: "message",
      message: {
        ...common,
        type: "track",
        event: EMAIL_EVENT_NAMES[email.type],
        properties: emailProperties(email),
        context: contextOf(email.user, email.user_agent),
      },
    };
  }
  return {
    kind: "message",
    message: { ...common, type: "identify", traits: userTraits(parsed.webhook), context: contextOf(webhook.user) },
  };
}
