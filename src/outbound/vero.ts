/**
 * Sends mapped requests to Vero's Track API v2. Knows nothing of Segment or
 * of HTTP routes, so the inline routes and a later queue consumer share it:
 * settings and requests in, success or a DeliveryError out.
 */
import { DeliveryError, isRetryableStatus, retryAfterSeconds } from "../shared/errors.ts";
import { describeError, log } from "../shared/log.ts";
import type { OutboundSettings } from "../shared/settings.ts";
import type { VeroRequest } from "./map.ts";

export const VERO_TIMEOUT_MS = 10_000;

// Vero's messages are short; a long body is an HTML error page that would drown the response.
const MAX_MESSAGE_CHARS = 300;

export type VeroTarget = Pick<OutboundSettings, "veroApiUrl" | "veroCredential">;

/**
 * Makes one event's calls in order and stops at the first failure, so a
 * tags edit is only made once the call that creates the user succeeded.
 * Throws a DeliveryError: `retryable` for 429, 5xx, timeouts and network
 * errors; permanent, with Vero's own message, for any other 4xx.
 */
export async function sendToVero(target: VeroTarget, requests: readonly VeroRequest[]): Promise<void> {
  for (const request of requests) await sendOne(target, request);
}

/**
 * One call, and one log line for it whatever its outcome: which call,
 * Vero's status, how long it took and whether a retry may help. Never the
 * body, which holds the credential and the user's email.
 */
async function sendOne(target: VeroTarget, request: VeroRequest): Promise<void> {
  const call = `${request.method} ${request.path}`;
  const started = Date.now();
  try {
    const status = await callVero(target, request, call);
    log("info", "vero call", {
      upstream: "vero",
      call,
      outcome: "delivered",
      status,
      durationMs: Date.now() - started,
    });
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

/** Resolves with Vero's (2xx) status; any failure is a DeliveryError. */
async function callVero(target: VeroTarget, request: VeroRequest, call: string): Promise<number> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(`${target.veroApiUrl}${request.path}`, {
      method: request.method,
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ ...request.body, ...target.veroCredential }),
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
  throw new DeliveryError("vero", `Vero answered ${response.status} to ${call}: ${message}`, {
    retryable: isRetryableStatus(response.status),
    status: response.status,
    retryAfter: retryAfterSeconds(response.headers.get("retry-after")),
  });
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
