/**
 * The HTTP side of the inbound direction: read Vero's body, map it, hand
 * the message to Segment, and answer in a way Vero acts on correctly
 * (2xx: done, do not resend; 503: resend later; 400: never resend).
 */
import type { Context, MiddlewareHandler } from "hono";
import { Counters, writeCountsAfterAnswer } from "../delivery/ledger.ts";
import { queueFor } from "../shared/enqueue.ts";
import { BridgeError, badRequest, DeliveryError } from "../shared/errors.ts";
import type { AppEnv } from "../shared/http.ts";
import { jsonBytes } from "../shared/json.ts";
import { describeError, type LogFields, log, logSampled } from "../shared/log.ts";
import { enqueueWebhook } from "./enqueue.ts";
import { MAX_SEGMENT_MESSAGE_BYTES } from "./job.ts";
import { EMAIL_EVENT_NAMES, mapVeroWebhook, type SegmentMessage } from "./map.ts";
import { deliverToSegment, segmentFailureKind } from "./segment.ts";

/** What the one log line of a webhook request says beyond route, status and duration. */
export type WebhookLogFields = Pick<LogFields, string>;

export type InboundEnv = AppEnv & { Variables: AppEnv["Variables"] & { webhookLog: WebhookLogFields } };

/** For requests refused before the handler learnt anything (auth, size, settings, an unreadable body). */
const OUTCOME_BY_STATUS: Record<number, string> = {
  400: "invalid",
  401: "unauthorized",
  413: "too_large",
  503: "not_configured",
};

/**
 * Logs one line per webhook request (401s and 503s of an unconfigured
 * direction included), a 2xx only when its messageId is sampled: the
 * handler adds the type, outcome and messageId it learns; nothing here is
 * an email or a secret.
 */
export const webhookRequestLog: MiddlewareHandler<InboundEnv> = async (c, next) => {
  const started = Date.now();
  const fields: WebhookLogFields = {};
  c.set("webhookLog", fields);
  c.set("requestLogged", true);
  await next();
  const status = c.res.status;
  const line = {
    route: "POST /vero/webhook",
    status,
    outcome: fields.outcome ?? OUTCOME_BY_STATUS[status] ?? "failed",
    ...fields,
    durationMs: Date.now() - started,
  };
  if (status < 300) logSampled(typeof fields.messageId === "string" ? fields.messageId : null, "vero webhook", line);
  else log(status >= 500 ? "warn" : "info", "vero webhook", line);
};

/**
 * The body as JSON, whatever the Content-Type: Vero promises none. A body
 * that is URL-encoded JSON (`%7B...`) is decoded first; `+` is a space
 * there, as in any form encoding (a literal plus arrives as `%2B`).
 */
export function parseWebhookBody(raw: string): unknown {
  const text = raw.trim();
  if (text === "") throw badRequest("empty body: expected a Vero webhook as JSON");
  const json = /^%(7b|5b)/i.test(text) ? decodeUrlEncoded(text) : text;
  try {
    return JSON.parse(json);
  } catch (error) {
    throw badRequest(`body is not valid JSON: ${describeError(error).replace(/^SyntaxError: /, "")}`);
  }
}

function decodeUtf8(bytes: ArrayBuffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    // Replacing bad bytes would change the webhook's content (and its messageId) without a word.
    throw badRequest("body is not valid UTF-8");
  }
}

function decodeUrlEncoded(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    // The URIError says nothing more than this sentence does.
    throw badRequest("body looks URL-encoded but is not valid percent-encoding");
  }
}

/** Turns a failed delivery into what Vero should do next. */
function deliveryFailure(error: DeliveryError): BridgeError {
  const details = { upstream: "segment", upstreamStatus: error.status ?? null, retryable: error.retryable };
  switch (segmentFailureKind(error)) {
    case "retry":
      return new BridgeError(
        503,
        "segment_unavailable",
        `Segment could not take the event; retry later (${error.message})`,
        {
          details,
          headers: error.retryAfter !== undefined ? { "Retry-After": String(error.retryAfter) } : {},
          cause: error,
        },
      );
    case "refused":
      return new BridgeError(
        400,
        "segment_rejected",
        `Segment refuses this event, so it will never succeed (${error.message})`,
        { details, cause: error },
      );
    case "check_settings":
      // Not the event's fault, and fixable by the operator, so Vero is asked to resend rather than told to drop it.
      return new BridgeError(
        503,
        "segment_refused",
        `Segment refused the request (${error.message}); check SEGMENT_WRITE_KEY and SEGMENT_API_HOST`,
        { details, cause: error },
      );
  }
}

/** Segment would refuse the event for its size: Vero hears it now rather than a dead letter later. */
function refuseOversized(message: SegmentMessage): void {
  const bytes = jsonBytes(message);
  if (bytes <= MAX_SEGMENT_MESSAGE_BYTES) return;
  throw new BridgeError(
    400,
    "segment_rejected",
    `the event is ${bytes} bytes once mapped, over Segment's 32 KB per event, so Segment would refuse it`,
    { details: { upstream: "segment", bytes, limit: MAX_SEGMENT_MESSAGE_BYTES } },
  );
}

/**
 * Without a queue the request is the delivery: its outcome is counted as
 * the Segment consumer counts a message's, so readiness and the failure-rate
 * alert see this path too (a 503 is a retry: Vero resends).
 */
async function deliverInline(c: Context<InboundEnv>, message: SegmentMessage, receivedAt: Date): Promise<void> {
  const counters = new Counters();
  const name = message.type === "track" ? message.event : message.type;
  try {
    await deliverToSegment(c.get("inbound"), [message]);
    counters.add("inbound", name, "delivered");
    counters.addLatency("inbound", Date.now() - receivedAt.getTime());
  } catch (error) {
    if (error instanceof DeliveryError)
      counters.add("inbound", name, segmentFailureKind(error) === "refused" ? "refused" : "retried");
    throw error;
  } finally {
    writeCountsAfterAnswer(c.executionCtx, c.env.LEDGER, counters, "inline inbound deliveries");
  }
}

/** The webhook's type when VERO_WEBHOOK_TYPES_DROPPED lists it (the route and the event tester ask alike). */
export function droppedType(droppedTypes: readonly string[], json: unknown): string | undefined {
  const type = typeof json === "object" && json !== null ? (json as { type?: unknown }).type : undefined;
  return typeof type === "string" && droppedTypes.includes(type) ? type : undefined;
}

/** A dropped webhook, counted as filtered under the name the event would have had in Segment, after the answer. */
function countDropped(c: Context<InboundEnv>, type: string): void {
  const counters = new Counters();
  const name = Object.hasOwn(EMAIL_EVENT_NAMES, type)
    ? EMAIL_EVENT_NAMES[type as keyof typeof EMAIL_EVENT_NAMES]
    : type;
  counters.add("inbound", name, "filtered");
  writeCountsAfterAnswer(c.executionCtx, c.env.LEDGER, counters, "a dropped webhook");
}

export async function handleVeroWebhook(c: Context<InboundEnv>): Promise<Response> {
  const fields = c.get("webhookLog");
  // Before the body is read: queue mode without its dead-letter store is a 503 naming the binding.
  const queue = queueFor(c.env, "SEGMENT_QUEUE");
  // Bytes, not c.req.text(): the Content-Type may say anything (workerd warns when text() meets a form type).
  const json = parseWebhookBody(decodeUtf8(await c.req.arrayBuffer()));
  const dropped = droppedType(c.get("inbound").droppedTypes, json);
  if (dropped) {
    // Answered 2xx: Vero would otherwise resend it.
    countDropped(c, dropped);
    fields.outcome = "filtered";
    fields.type = dropped;
    return c.json({ ok: true, filtered: `VERO_WEBHOOK_TYPES_DROPPED lists ${dropped}` });
  }
  const receivedAt = new Date();
  const mapped = mapVeroWebhook(json, { receivedAt });

  if (mapped.kind === "invalid") {
    fields.outcome = "invalid";
    throw badRequest(mapped.problem.message, { issues: mapped.problem.issues });
  }
  if (mapped.kind === "ignored") {
    // Answered 2xx: Vero would otherwise resend a type the bridge will never forward.
    fields.outcome = "ignored";
    fields.type = mapped.type;
    return c.json({ ok: true, ignored: mapped.reason });
  }

  const { message } = mapped;
  fields.type = message.type === "track" ? message.event : "identify";
  fields.messageId = message.messageId;
  try {
    refuseOversized(message);
    if (queue) await enqueueWebhook(queue, message);
    else await deliverInline(c, message, receivedAt);
  } catch (error) {
    if (error instanceof BridgeError) {
      fields.outcome = error.code;
      throw error;
    }
    if (!(error instanceof DeliveryError)) throw error;
    const failure = deliveryFailure(error);
    fields.outcome = failure.code;
    fields.upstreamStatus = error.status;
    fields.error = error.message;
    throw failure;
  }
  fields.outcome = queue ? "queued" : "delivered";
  const call =
    message.type === "track" ? { call: "track" as const, event: message.event } : { call: "identify" as const };
  return queue
    ? c.json({ ok: true, queued: true, messageId: message.messageId, ...call }, 202)
    : c.json({ ok: true, messageId: message.messageId, ...call });
}
