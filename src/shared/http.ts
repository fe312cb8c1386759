import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Env } from "./env.ts";
import { BridgeError } from "./errors.ts";
import { describeError, log } from "./log.ts";
import { describeUnready, type InboundSettings, type OutboundSettings, settingsFor } from "./settings.ts";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    inbound: InboundSettings;
    outbound: OutboundSettings;
    /** Set by a route that writes its own line for every request, refusals included. */
    requestLogged?: true;
    /** The body as JSON, when a step before the handler parsed it already (a writeKey in the body). */
    parsedBody?: unknown;
  };
}

export type AppContext = Context<AppEnv>;

/** Vero and Segment both send far less; anything larger is a mistake or an attack. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** A route's limit on its body: the most bytes it reads, and what it answers past them. */
export interface BodyLimit {
  maxBytes: number;
  tooLarge: () => BridgeError;
}

const DEFAULT_LIMIT: BodyLimit = {
  maxBytes: MAX_BODY_BYTES,
  tooLarge: () => new BridgeError(413, "payload_too_large", `request body is over ${MAX_BODY_BYTES} bytes (1 MiB)`),
};

type Compression = "gzip" | "deflate";

/** The `Content-Encoding` names accepted where SDKs call, and the runtime's format for each. */
const DECODERS: Record<string, Compression> = { gzip: "gzip", "x-gzip": "gzip", deflate: "deflate" };

/** SDKs apply one coding; two allow a proxy's on top. Each more is another decoder to chain. */
const MAX_CODINGS = 2;

/** The encodings of a body in the order they were applied, or the first one the bridge cannot undo. */
function decoders(header: string | undefined): Compression[] {
  const codings = (header ?? "")
    .split(",")
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== "" && coding !== "identity");
  if (codings.length > MAX_CODINGS)
    throw new BridgeError(
      415,
      "unsupported_encoding",
      `Content-Encoding lists ${codings.length} codings; at most ${MAX_CODINGS} are undone`,
    );
  for (const coding of codings)
    if (!Object.hasOwn(DECODERS, coding))
      throw new BridgeError(
        415,
        "unsupported_encoding",
        `Content-Encoding ${coding} is not supported; send the body plain, gzip or deflate`,
      );
  return codings.map((coding) => DECODERS[coding] as Compression);
}

/**
 * Decodes a compressed body into memory, at most `maxBytes` of it as
 * sent and as decoded: reading stops at the first byte over either, so a small
 * compressed bomb is never inflated in full.
 */
async function readLimited(
  body: ReadableStream<Uint8Array>,
  formats: Compression[],
  { maxBytes, tooLarge }: BodyLimit,
): Promise<Uint8Array> {
  let over = false;
  const capped = () => {
    let size = 0;
    return new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        size += chunk.byteLength;
        if (size <= maxBytes) return controller.enqueue(chunk);
        over = true;
        controller.error(tooLarge());
      },
    });
  };
  let stream = body.pipeThrough(capped());
  for (const format of formats.toReversed()) stream = stream.pipeThrough(new DecompressionStream(format));
  stream = stream.pipeThrough(capped());
  try {
    return await new Response(stream).bytes();
  } catch (error) {
    if (over) throw tooLarge();
    throw new BridgeError(400, "invalid_encoding", `the body is not valid ${formats.join(" then ")} data`, {
      cause: error,
    });
  }
}

/**
 * The size limit, and on the routes Segment's SDKs call, `Content-Encoding:
 * gzip` or `deflate` undone first: the limit counts the decoded bytes. The
 * handler then reads a plain body.
 */
export function bodyReader({ decode, limit }: { decode: boolean; limit?: BodyLimit }): MiddlewareHandler<AppEnv> {
  const { maxBytes, tooLarge } = limit ?? DEFAULT_LIMIT;
  // Hono's own limit: a declared Content-Length is checked without touching the body, which then flows as sent.
  const limitPlain = bodyLimit({ maxSize: maxBytes, onError: () => Promise.reject(tooLarge()) });
  return async (c, next) => {
    const formats = decode ? decoders(c.req.header("Content-Encoding")) : [];
    const raw = c.req.raw;
    if (formats.length === 0 || !raw.body) return limitPlain(c, next);
    const bytes = await readLimited(raw.body, formats, { maxBytes, tooLarge });
    const headers = new Headers(raw.headers);
    headers.delete("Content-Encoding");
    headers.set("Content-Length", String(bytes.byteLength));
    c.req.raw = new Request(raw.url, { method: raw.method, headers, body: bytes });
    await next();
  };
}

/** The size limit on bodies taken as sent. */
export const limitBody = bodyReader({ decode: false });

/**
 * Puts a direction's parsed settings on the context, or answers 503 naming
 * exactly which settings to set. Runs first, so an unconfigured direction
 * never reads a body or compares a credential.
 */
export function requireDirection(name: "inbound" | "outbound"): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const state = settingsFor(c.env)[name];
    if (!state.ready) throw notConfigured(name, state);
    if (name === "inbound") c.set("inbound", state.settings as InboundSettings);
    else c.set("outbound", state.settings as OutboundSettings);
    await next();
  };
}

/** The 503 of a part of the bridge whose settings are missing or invalid, naming them. */
export function notConfigured(
  name: "inbound" | "outbound" | "admin",
  state: { missing: string[]; invalid: string[] },
): BridgeError {
  return new BridgeError(503, "not_configured", describeUnready(name, state), {
    details: { missing: state.missing, invalid: state.invalid },
  });
}

/** `code` and `message` also at the top, where Segment's libraries read an error (analytics-python). */
export function errorBody(status: number, code: string, message: string, details?: unknown) {
  return {
    ok: false as const,
    code,
    message,
    error: details === undefined ? { status, code, message } : { status, code, message, details },
  };
}

/** The one error path: every error leaves as JSON, and no stack or secret leaves at all. */
export function renderError(error: Error, c: Context<AppEnv>): Response {
  if (error instanceof BridgeError) {
    if (error.status >= 500)
      log("warn", "request failed", { route: c.req.path, status: error.status, code: error.code });
    return c.json(errorBody(error.status, error.code, error.message, error.details), error.status, error.headers);
  }
  if (error instanceof HTTPException) {
    const status = error.status as ContentfulStatusCode;
    return c.json(errorBody(status, "http_error", error.message || "request failed"), status);
  }
  log("error", "unexpected error", { route: c.req.path, error: describeError(error) });
  return c.json(errorBody(500, "internal_error", "the bridge failed unexpectedly; the error is logged"), 500);
}

/**
 * What a request is refused with before any route handler reads it, or
 * before the handler writes its own line (too many users for the mailboxes); handlers
 * log their other outcomes themselves.
 */
const REFUSED_BEFORE_HANDLER = new Set([
  "unauthorized",
  "payload_too_large",
  "too_many_users",
  "unsupported_encoding",
  "invalid_encoding",
  "not_configured",
  "method_not_allowed",
  "not_found",
]);

/**
 * The log line of a request that never reached a handler: a wrong
 * credential, a body over the limit, an unconfigured direction, an unknown
 * path or method. Without it, a caller hammering the bridge with a bad
 * secret would leave no trace. The path is logged, never the query (Vero's
 * token rides there) or a header.
 */
export const refusalLog: MiddlewareHandler<AppEnv> = async (c, next) => {
  const started = Date.now();
  await next();
  if (c.get("requestLogged")) return;
  const code = c.error instanceof BridgeError ? c.error.code : c.res.status === 404 ? "not_found" : undefined;
  if (code === undefined || !REFUSED_BEFORE_HANDLER.has(code)) return;
  log("info", "request refused", {
    route: `${c.req.method} ${c.req.path}`,
    status: c.res.status,
    outcome: code,
    durationMs: Date.now() - started,
  });
};

export function notFound(c: Context<AppEnv>): Response {
  return c.json(errorBody(404, "not_found", `no route for ${c.req.method} ${c.req.path}`), 404);
}

/**
 * For Hono's method-not-allowed: a known path called with another method is
 * answered through the one error path, as JSON with `Allow`.
 */
export function rejectMethod(c: Context<AppEnv>, allowed: string[]): never {
  throw new BridgeError(
    405,
    "method_not_allowed",
    `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(" or ")}`,
    { headers: { Allow: allowed.join(", ") } },
  );
}
