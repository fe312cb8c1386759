/**
 * An alert as the receiver's body, one pure function per format. `chat`
 * carries the same words as `text` (Slack's incoming webhooks) and `content`
 * (Discord's), which each ignore the other's field.
 */
import { redactEmails } from "../../shared/log.ts";
import type { AlertFormat } from "../../shared/settings.ts";
import type { Condition } from "./conditions.ts";
import type { AlertKind } from "./transitions.ts";

export interface Alert {
  kind: AlertKind;
  condition: Condition;
  at: Date;
}

/** Discord refuses `content` over 2000 characters. */
const MAX_TEXT = 1900;
const SOURCE = "vero-segment-bridge";

/**
 * Reasons quote upstreams and payloads: emails become fingerprints, and the
 * characters Slack reads as markup (`<`, `>`, `&`) or Discord as mentions
 * (`@`) are swapped for look-alikes, since the two escape differently.
 */
export function plain(text: string): string {
  return redactEmails(text).replace(/[<>&@]/g, (c) => ({ "<": "‹", ">": "›", "&": "＆", "@": "＠" })[c] ?? c);
}

/** The console link: absolute with PUBLIC_URL, else the path for the operator to open on their own host. */
export const linkOf = (condition: Condition, publicUrl: string | undefined) => `${publicUrl ?? ""}${condition.link}`;

export function headline(alert: Alert): string {
  const summary = plain(alert.condition.summary);
  if (alert.kind === "resolved") return `✅ Resolved: ${summary}`;
  return `${alert.kind === "repeat" ? "🔴 Still" : "🔴"} ${summary}`;
}

export function textOf(alert: Alert, publicUrl: string | undefined): string {
  const lines = [`[${SOURCE}] ${headline(alert)}`];
  if (alert.kind !== "resolved") lines.push(...alert.condition.details.map((detail) => `• ${plain(detail)}`));
  lines.push(`Console: ${linkOf(alert.condition, publicUrl)}`);
  const text = lines.join("\n");
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

export function chatBody(alert: Alert, publicUrl: string | undefined) {
  const text = textOf(alert, publicUrl);
  return { text, content: text };
}

/** The chat fields plus the facts, for a receiver that routes on them. */
export function jsonBody(alert: Alert, publicUrl: string | undefined) {
  return {
    ...chatBody(alert, publicUrl),
    source: SOURCE,
    condition: alert.condition.key,
    kind: alert.kind,
    summary: plain(alert.condition.summary),
    details: alert.condition.details.map(plain),
    link: linkOf(alert.condition, publicUrl),
    at: alert.at.toISOString(),
  };
}

/** PagerDuty Events API v2: one incident per condition (the dedup key), resolved by the "resolved" message. */
export function pagerDutyBody(alert: Alert, publicUrl: string | undefined, routingKey: string) {
  const link = linkOf(alert.condition, publicUrl);
  return {
    routing_key: routingKey,
    event_action: alert.kind === "resolved" ? "resolve" : "trigger",
    dedup_key: `${SOURCE}:${alert.condition.key}`,
    payload: {
      summary: plain(alert.condition.summary).slice(0, 1024),
      source: publicUrl ? new URL(publicUrl).host : SOURCE,
      severity: "error",
      timestamp: alert.at.toISOString(),
      custom_details: { details: alert.condition.details.map(plain) },
    },
    ...(link.startsWith("http") ? { links: [{ href: link, text: "Console" }] } : {}),
  };
}

export function bodyOf(
  alert: Alert,
  settings: { format: AlertFormat; publicUrl?: string; routingKey?: string },
): Record<string, unknown> {
  switch (settings.format) {
    case "json":
      return jsonBody(alert, settings.publicUrl);
    case "pagerduty":
      return pagerDutyBody(alert, settings.publicUrl, settings.routingKey ?? "");
    default:
      return chatBody(alert, settings.publicUrl);
  }
}
