/**
 * Sends Segment messages with @segment/analytics-node and says, for each,
 * whether Segment took it.
 *
 * analytics-node is built for long-lived servers: it batches in the
 * background, retries for hours, and reports failures through events, never
 * by throwing. In a Worker a request must know the outcome before it
 * answers, so each delivery gets its own client with short retries and a
 * deadline, flushes it, and collects every message's outcome from the
 * client's events. The function takes many messages so that a queue
 * consumer can send a whole batch in one request.
 */
import { Analytics } from "@segment/analytics-node";
import { DeliveryError, isRetryableStatus, retryAfterSeconds } from "../shared/errors.ts";
import { describeError, log, sampledOf } from "../shared/log.ts";
import type { InboundSettings } from "../shared/settings.ts";
import type { SegmentMessage } from "./map.ts";

export interface SendOptions {
  /** Attempts after the first, for 5xx, 429 without Retry-After, timeouts and network errors. */
  maxRetries?: number;
  /** One HTTP request to Segment. */
  httpRequestTimeoutMs?: number;
  /** The whole delivery, retries included; anything still in flight is then aborted and counted as failed. */
  deadlineMs?: number;
  /**
   * How long a 429's Retry-After may hold the delivery. 0 (the default)
   * gives up at once, so that the webhook's sender retries later instead of
   * a request waiting out Segment's rate limit.
   */
  maxRateLimitSeconds?: number;
}

/**
 * Vero gives a webhook a few seconds (its documentation names no number,
 * so the bridge stays under 10 s): 3 attempts of at most 2.5 s each with
 * backoff in between, and 8 s for everything.
 */
export const INLINE_SEND_OPTIONS: Required<SendOptions> = {
  maxRetries: 2,
  httpRequestTimeoutMs: 2_500,
  deadlineMs: 8_000,
  maxRateLimitSeconds: 0,
};

/** After the deadline aborts the client, its outcome events follow within moments; this bounds "moments". */
const SETTLE_GRACE_MS = 1_000;

export type SendOutcome = { messageId: string; ok: true } | { messageId: string; ok: false; error: DeliveryError };

type SegmentSettings = Pick<InboundSettings, "segmentWriteKey" | "segmentApiHost">;

/** Segment's answer to the last request that carried a message. */
interface Answer {
  status: number;
  statusText: string;
  retryAfter: number | undefined;
}

/**
 * A failed message as a DeliveryError: Segment's status when a request
 * carrying it got an answer; otherwise it never arrived (a timeout, the
 * deadline, a network error), and a retry may succeed: the messageId makes
 * a retry of something that did arrive harmless.
 */
function toDeliveryError(reason: unknown, answer: Answer | undefined): DeliveryError {
  if (answer !== undefined && (answer.status < 200 || answer.status >= 300)) {
    const { status, statusText, retryAfter } = answer;
    return new DeliveryError("segment", `Segment answered ${status}${statusText ? ` ${statusText}` : ""}`, {
      retryable: isRetryableStatus(status),
      status,
      retryAfter,
      cause: reason,
    });
  }
  const message = reason instanceof Error ? reason.message : String(reason);
  return new DeliveryError("segment", `Segment could not be reached: ${message}`, { retryable: true, cause: reason });
}

/** Segment's refusal of the payload itself: resending it cannot help. */
const PAYLOAD_REFUSED = new Set([400, 413, 422]);

/**
 * What a failed delivery calls for, the same on the webhook route and in
 * the queue consumer: `retry` later; `refused`, the event itself, for
 * good; or `check_settings`, any other refusal (401, 403, 404: a wrong
 * write key or host), which the operator can fix, so the event waits.
 */
export function segmentFailureKind(error: DeliveryError): "retry" | "refused" | "check_settings" {
  if (error.retryable) return "retry";
  return error.status === undefined || PAYLOAD_REFUSED.has(error.status) ? "refused" : "check_settings";
}

// Enough to find an attempt's messages in the logs without writing out a whole batch.
const LOGGED_MESSAGE_IDS = 50;

/** The messageIds a batch request carries, read back from the body analytics-node built. */
function batchMessageIds(body: unknown): string[] {
  if (typeof body !== "string") return [];
  try {
    const parsed: unknown = JSON.parse(body);
    const batch = typeof parsed === "object" && parsed !== null && "batch" in parsed ? parsed.batch : undefined;
    if (!Array.isArray(batch)) return [];
    return batch.flatMap((message: unknown) =>
      typeof message === "object" && message !== null && "messageId" in message && typeof message.messageId === "string"
        ? [message.messageId]
        : [],
    );
  } catch {
    return [];
  }
}

/**
 * One log line per HTTP attempt analytics-node makes (its retries each get
 * one): path, Segment's status, duration, and which messages rode in it.
 * A success is logged only when it carried sampled messages, and names
 * those. Never the body or the Authorization header, which carries the
 * write key.
 */
async function loggedAttempt(
  url: string,
  messageIds: readonly string[],
  send: () => Promise<Response>,
): Promise<Response> {
  const started = Date.now();
  const fields = {
    upstream: "segment",
    call: `POST ${new URL(url).pathname}`,
    events: messageIds.length,
    messageIds: messageIds.slice(0, LOGGED_MESSAGE_IDS),
  };
  try {
    const response = await send();
    const outcome = response.ok ? "delivered" : isRetryableStatus(response.status) ? "retryable" : "refused";
    const sampled = response.ok ? sampledOf(messageIds) : messageIds;
    if (!response.ok || sampled.length > 0)
      log(response.ok ? "info" : "warn", "segment call", {
        ...fields,
        messageIds: sampled.slice(0, LOGGED_MESSAGE_IDS),
        outcome,
        status: response.status,
        durationMs: Date.now() - started,
      });
    return response;
  } catch (error) {
    log("warn", "segment call", {
      ...fields,
      outcome: "retryable",
      status: null,
      error: describeError(error),
      durationMs: Date.now() - started,
    });
    throw error;
  }
}

function dispatch(client: Analytics, original: SegmentMessage): void {
  // analytics-node writes into the objects it is given (context.library, _metadata); the caller's message stays as it was.
  const message = structuredClone(original);
  const common = {
    ...(message.userId !== undefined ? { userId: message.userId } : { anonymousId: message.anonymousId }),
    messageId: message.messageId,
    timestamp: message.timestamp,
    context: message.context,
    integrations: message.integrations,
  } as const;
  if (message.type === "track") client.track({ ...common, event: message.event, properties: message.properties });
  else client.identify({ ...common, traits: message.traits });
}

/**
 * Sends `messages` to Segment and resolves with one outcome per message,
 * in order. Never rejects for a delivery failure: each failed message
 * carries a DeliveryError saying whether a retry may succeed.
 */
export async function sendToSegment(
  settings: SegmentSettings,
  messages: readonly SegmentMessage[],
  options: SendOptions = {},
): Promise<SendOutcome[]> {
  if (messages.length === 0) return [];
  const { maxRetries, httpRequestTimeoutMs, deadlineMs, maxRateLimitSeconds } = { ...INLINE_SEND_OPTIONS, ...options };

  // analytics-node stops retrying at its flush timeout but lets a request in flight run to its own timeout;
  // this signal cuts that request too, so the deadline holds.
  const deadline = new AbortController();
  const answers = new Map<string, Answer>();
  const client = new Analytics({
    writeKey: settings.segmentWriteKey,
    host: settings.segmentApiHost,
    maxRetries,
    httpRequestTimeout: httpRequestTimeoutMs,
    // Everything goes out in the flush below (analytics-node splits batches over 480 KB itself).
    flushAt: messages.length,
    flushInterval: deadlineMs,
    maxRateLimitDuration: maxRateLimitSeconds,
    maxTotalBackoffDuration: Math.ceil(deadlineMs / 1000),
    httpClient: async (url, init) => {
      const messageIds = batchMessageIds(init.body);
      // An attempt without an answer leaves no status behind: an earlier attempt's would be stale.
      for (const id of messageIds) answers.delete(id);
      const response = await loggedAttempt(url, messageIds, () =>
        fetch(url, { ...init, signal: AbortSignal.any([init.signal, deadline.signal]) }),
      );
      const answer = {
        status: response.status,
        statusText: response.statusText,
        retryAfter: retryAfterSeconds(response.headers.get("retry-after")),
      };
      for (const id of messageIds) answers.set(id, answer);
      return response;
    },
  });

  const settled = new Map<string, SendOutcome>();
  let settleAll: () => void = () => {};
  const allSettled = new Promise<void>((resolve) => {
    settleAll = resolve;
  });
  const pending = new Set(messages.map((message) => message.messageId));
  const settle = (outcome: SendOutcome) => {
    if (!pending.delete(outcome.messageId)) return;
    settled.set(outcome.messageId, outcome);
    if (pending.size === 0) settleAll();
  };
  // Success and failure arrive as events; a failure's context names the message it belongs to.
  const onDelivered = (ctx: { event: { messageId?: string } }) => {
    if (ctx.event.messageId !== undefined) settle({ messageId: ctx.event.messageId, ok: true });
  };
  client.on("track", onDelivered);
  client.on("identify", onDelivered);
  client.on("error", (failure) => {
    const messageId = failure.ctx?.event.messageId;
    const fail = (id: string) =>
      settle({ messageId: id, ok: false, error: toDeliveryError(failure.reason, answers.get(id)) });
    if (messageId !== undefined) fail(messageId);
    // A failure without a context cannot be pinned on one message, so it fails every message still pending.
    else for (const id of [...pending]) fail(id);
  });

  for (const message of messages) dispatch(client, message);

  await client.closeAndFlush({ timeout: deadlineMs });
  deadline.abort(new Error("Segment delivery deadline"));

  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    allSettled,
    new Promise<void>((resolve) => {
      graceTimer = setTimeout(resolve, SETTLE_GRACE_MS);
    }),
  ]);
  if (graceTimer !== undefined) clearTimeout(graceTimer);

  return messages.map(
    (message) =>
      settled.get(message.messageId) ?? {
        messageId: message.messageId,
        ok: false,
        error: new DeliveryError("segment", `Segment did not answer within ${deadlineMs} ms`, { retryable: true }),
      },
  );
}

/**
 * Sends `messages` and resolves only when Segment took every one; otherwise
 * rejects with the first failure, made retryable when any failure is (a
 * retry then resends all, which the messageIds make harmless).
 */
export async function deliverToSegment(
  settings: SegmentSettings,
  messages: readonly SegmentMessage[],
  options: SendOptions = {},
): Promise<void> {
  const failures = (await sendToSegment(settings, messages, options)).flatMap((outcome) =>
    outcome.ok ? [] : [outcome.error],
  );
  const first = failures.find((error) => error.retryable) ?? failures[0];
  if (first) throw first;
}
