/**
 * Sends mapped requests to Vero's Track API v2. Knows nothing of Segment or
 * of HTTP routes, so the mailboxes call it with what they hold:
 * settings and requests in, success or a DeliveryError out.
 */
import { DeliveryError, isRetryableStatus, retryAfterSeconds } from "../shared/errors.ts";
import { describeError, log, logSampled } from "../shared/log.ts";
import type { VeroCredential, VeroTarget } from "../shared/settings.ts";
import type { VeroRequest } from "./map.ts";

export const VERO_TIMEOUT_MS = 10_000;

// Vero's messages are short; a long body is an HTML error page that would drown the response.
const MAX_MESSAGE_CHARS = 300;

export type { VeroTarget } from "../shared/settings.ts";

/**
 * Makes one event's calls in order and stops at the first failure, so a
 * tags edit is only made once the call that creates the user succeeded.
 * Throws a DeliveryError: `retryable` for 429, 5xx, timeouts and network
 * errors; permanent, with Vero's own message, for any other 4xx.
 */
export async function sendToVero(
  target: VeroTarget,
  requests: readonly VeroRequest[],
  messageId?: string | null,
): Promise<number[]> {
  const statuses: number[] = [];
  for (const request of requests)
    statuses.push(
      request.path === "/users/delete"
        ? await deleteUser(target, request, messageId)
        : await sendOne(target, request, messageId),
    );
  return statuses;
}

/** Vero's own answer that the user does not exist (any other 404 is made retryable by callVero). */
export const isUserNotFound = (error: DeliveryError): boolean => error.status === 404 && !error.retryable;

/** No answer at all (a timeout, a dropped connection): the call may or may not have been done. */
const gotNoAnswer = (error: unknown): boolean =>
  error instanceof DeliveryError && error.status === undefined && error.retryable;

/**
 * A deletion is done when Vero confirms it. A delete whose answer was lost
 * may have been done, so it is asked again at once: if Vero now answers
 * that the user does not exist, the lost call did it. Without an earlier
 * call that got no answer, Vero's "not found" stays a failure (the user id
 * may be wrong), which the consumer keeps as a dead letter.
 */
async function deleteUser(target: VeroTarget, request: VeroRequest, messageId?: string | null): Promise<number> {
  try {
    return await sendOne(target, request, messageId);
  } catch (error) {
    if (!gotNoAnswer(error)) throw error;
    try {
      return await sendOne(target, request, messageId);
    } catch (again) {
      if (!(again instanceof DeliveryError && isUserNotFound(again))) throw again;
      logSampled(messageId, "vero call", {
        upstream: "vero",
        call: "POST /users/delete",
        outcome: "delivered",
        status: 404,
        note: "the user is gone: an earlier delete that got no answer removed it",
      });
      return 404;
    }
  }
}

/**
 * One call, and a log line for it (a success only when the event's
 * messageId is sampled): which call, Vero's status, how long it took and
 * whether a retry may help. Never the body, which holds the credential and
 * the user's email. Resolves with Vero's status.
 */
async function sendOne(target: VeroTarget, request: VeroRequest, messageId?: string | null): Promise<number> {
  const call = `${request.method} ${request.path}`;
  const started = Date.now();
  try {
    const status = await callVero(target, request, call);
    logSampled(messageId, "vero call", {
      upstream: "vero",
      call,
      outcome: "delivered",
      status,
      durationMs: Date.now() - started,
    });
    return status;
  } catch (error) {
    log("warn", "vero call", {
      upstream: "vero",
      call,
      outcome: error instanceof DeliveryError ? (error.retryable ? "retryable" : "refused") : "failed",
      status: error instanceof DeliveryError ? (error.status ?? null) : null,
      retryable: error instanceof DeliveryError ? error.retryable : undefined,
      // Vero's message may quote the user's email: log() fingerprints it.
      error: describeError(error),
      durationMs: Date.now() - started,
    });
    throw error;
  }
}

/** The body Vero receives: the mapped call's, the credential added last. The event tester shows it masked. */
export const bodyWithCredential = (request: VeroRequest, credential: VeroCredential | Record<string, string>) => ({
  ...request.body,
  ...credential,
});

/** Resolves with Vero's (2xx) status; any failure is a DeliveryError. */
async function callVero(target: VeroTarget, request: VeroRequest, call: string): Promise<number> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(`${target.veroApiUrl}${request.path}`, {
      method: request.method,
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(bodyWithCredential(request, target.veroCredential)),
      signal: AbortSignal.timeout(VERO_TIMEOUT_MS),
    });
    // Read inside the timeout too: a body that never ends is as bad as no answer.
    text = await response.text();
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    throw new DeliveryError(
      "vero",
      timedOut
        ? `Vero did not answer ${call} within ${VERO_TIMEOUT_MS / 1000} s`
        : `Vero could not be reached for ${call}: ${error instanceof Error ? error.message : String(error)}`,
      { retryable: true, cause: error },
    );
  }
  if (response.ok) return response.status;

  const message = veroMessage(text) ?? response.statusText;
  if (response.status === 404 && !saysUserNotFound(text)) {
    // Vero answers a known path with JSON; anything else is another server: VERO_API_URL is wrong,
    // and every call would fail the same way until it is fixed, so nothing is given up on.
    throw new DeliveryError(
      "vero",
      `configuration error: ${call} answered 404 that is not Vero's (${message}); check VERO_API_URL (${target.veroApiUrl})`,
      { retryable: true, status: 404 },
    );
  }
  throw new DeliveryError("vero", `Vero answered ${response.status} to ${call}: ${message}`, {
    retryable: isRetryableStatus(response.status),
    status: response.status,
    retryAfter: retryAfterSeconds(response.headers.get("retry-after")),
  });
}

/**
 * Vero answers a missing user with its usual JSON, `{ "status": 404,
 * "message": "..." }`, the message saying the user was not found. An HTML
 * page, an empty body, or JSON of another shape or message comes from
 * somewhere else.
 */
function saysUserNotFound(text: string): boolean {
  try {
    const json: unknown = JSON.parse(text);
    return (
      typeof json === "object" &&
      json !== null &&
      "status" in json &&
      json.status === 404 &&
      "message" in json &&
      typeof json.message === "string" &&
      /\buser\b/i.test(json.message) &&
      /not (been )?found|does not exist|doesn't exist/i.test(json.message)
    );
  } catch {
    return false;
  }
}

/** Vero answers `{ status, message }`; anything else is quoted, shortened. */
function veroMessage(text: string): string | undefined {
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json === "object" && json !== null && "message" in json && typeof json.message === "string")
      return json.message.slice(0, MAX_MESSAGE_CHARS);
  } catch {
    // Not JSON: the raw text below is the message.
  }
  const trimmed = text.trim();
  return trimmed === "" ? undefined : trimmed.slice(0, MAX_MESSAGE_CHARS);
}
