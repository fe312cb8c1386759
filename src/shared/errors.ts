import type { ContentfulStatusCode } from "hono/utils/http-status";

/**
 * The one error type routes throw. `onError` renders it as
 * `{ ok: false, error: { code, message, details? } }` with its status, so
 * every failure a client sees is JSON and names the problem.
 */
export class BridgeError extends Error {
  readonly status: ContentfulStatusCode;
  readonly code: string;
  readonly details: unknown;
  readonly headers: Record<string, string>;

  constructor(
    status: ContentfulStatusCode,
    code: string,
    message: string,
    options: { details?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "BridgeError";
    this.status = status;
    this.code = code;
    this.details = options.details;
    this.headers = options.headers ?? {};
  }
}

export const badRequest = (message: string, details?: unknown) =>
  new BridgeError(400, "bad_request", message, { details });

/** The HTTP authentication schemes a route takes; the webhook's `?token=` is none of them. */
export type AuthScheme = "Basic" | "Bearer";

const REALM = 'realm="vero-segment-bridge"';

/**
 * A 401. `WWW-Authenticate` names the schemes the route takes, so a human with curl sees what is expected
 * without any secret being named; a route whose credential is not an HTTP scheme (a URL token) sends none.
 */
export const unauthorized = (message: string, schemes: readonly AuthScheme[] = []) =>
  new BridgeError(401, "unauthorized", message, {
    headers: schemes.length > 0 ? { "WWW-Authenticate": schemes.map((scheme) => `${scheme} ${REALM}`).join(", ") } : {},
  });

/**
 * A failed call to Segment or Vero. `retryable` is the one fact the routes
 * and queue consumers act on: retry (429, 5xx, timeouts, network errors) or
 * give up and report (any other 4xx, a payload the service refuses).
 */
export class DeliveryError extends Error {
  readonly upstream: "segment" | "vero";
  readonly retryable: boolean;
  readonly status: number | undefined;
  /** Seconds the upstream asked us to wait (Retry-After), when it said. */
  readonly retryAfter: number | undefined;

  constructor(
    upstream: "segment" | "vero",
    message: string,
    options: { retryable: boolean; status?: number; retryAfter?: number; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.name = "DeliveryError";
    this.upstream = upstream;
    this.retryable = options.retryable;
    this.status = options.status;
    this.retryAfter = options.retryAfter;
  }
}

/** 408, 429 and every 5xx may succeed later; other statuses will not. */
export const isRetryableStatus = (status: number): boolean => status === 408 || status === 429 || status >= 500;

/**
 * An upstream's `Retry-After` in whole seconds from now: delay-seconds or an
 * HTTP date (RFC 9110), a date in the past being 0. Undefined when absent
 * or unreadable.
 */
export function retryAfterSeconds(header: string | null | undefined): number | undefined {
  if (header === null || header === undefined || header.trim() === "") return undefined;
  const seconds = Number(header.trim());
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.ceil(seconds) : undefined;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
