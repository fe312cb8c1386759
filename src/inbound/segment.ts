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
import { DeliveryError, isRetryableStatus } from "../shared/errors.ts";
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

/** What analytics-node's failure reasons say, turned into the one fact callers act on. */
function toDeliveryError(reason: unknown, lastRetryAfter: number | undefined): DeliveryError {
  const message = reason instanceof Error ? reason.message : String(reason);
  // The publisher reports an HTTP failure as "[status] statusText".
  const status = message.match(/^\[(\d{3})\]/)?.[1];
  if (status !== undefined) {
    const code = Number(status);
    return new DeliveryError("segment", `Segment answered ${message}`, {
      retryable: isRetryableStatus(code),
      status: code,
      retryAfter: code === 429 ? lastRetryAfter : undefined,
      cause: reason,
    });
  }
  if (/rate limit/i.test(message)) {
    return new DeliveryError("segment", "Segment is rate limiting this write key (429)", {
      retryable: true,
      status: 429,
      retryAfter: lastRetryAfter,
      cause: reason,
    });
  }
  // Refused by analytics-node before sending: the event alone is over Segment's 32 KB.
  if (/maximum event size|batch size/i.test(message)) {
    return new DeliveryError("segment", `Segment would refuse the event: ${message}`, {
      retryable: false,
      cause: reason,
    });
  }
  // Timeouts, aborts at the deadline, network errors, and anything unforeseen: a retry may succeed,
  // and the messageId makes a retry of something that did arrive harmless.
  return new DeliveryError("segment", `Segment could not be reached: ${message}`, { retryable: true, cause: reason });
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
async function loggedAttempt(url: string, body: unknown, send: () => Promise<Response>): Promise<Response> {
  const started = Date.now();
  const messageIds = batchMessageIds(body);
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
    httpClient: (url, init) =>
      loggedAttempt(url, init.body, () =>
        fetch(url, { ...init, signal: AbortSignal.any([init.signal, deadline.signal]) }),
      ),
  });

  let lastRetryAfter: number | undefined;
  client.on("http_response", (response) => {
    const retryAfter = Number.parseInt(response.headers["retry-after"] ?? "", 10);
    if (response.status === 429) lastRetryAfter = Number.isFinite(retryAfter) ? retryAfter : undefined;
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
    const error = toDeliveryError(failure.reason, lastRetryAfter);
    const messageId = failure.ctx?.event.messageId;
    if (messageId !== undefined) settle({ messageId, ok: false, error });
    // A failure without a context cannot be pinned on one message, so it fails every message still pending.
    else for (const id of [...pending]) settle({ messageId: id, ok: false, error });
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
