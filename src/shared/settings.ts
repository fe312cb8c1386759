import * as z from "zod/mini";
import type { Env } from "./env.ts";
import { DEFAULT_LOG_SAMPLE_RATE, log } from "./log.ts";
import { mapped } from "./zod.ts";

export const DEFAULT_SEGMENT_API_HOST = "https://api.segment.io";
export const DEFAULT_VERO_API_URL = "https://api.getvero.com/api/v2";

export interface InboundSettings {
  segmentWriteKey: string;
  /** Origin of Segment's Tracking API, without a trailing slash. */
  segmentApiHost: string;
  /** One value, or two during a rotation. */
  webhookTokens: readonly string[];
}

export type VeroCredential = { auth_token: string } | { tracking_api_key: string };

export interface OutboundSettings {
  /** Base of Vero's Track API v2, without a trailing slash. */
  veroApiUrl: string;
  veroCredential: VeroCredential;
  /** One value, or two during a rotation. */
  sharedSecrets: readonly string[];
}

/** A direction is either ready to use or says which settings to fix. */
export type Direction<T> = { ready: true; settings: T } | { ready: false; missing: string[]; invalid: string[] };

export interface AdminSettings {
  /** One value, or two during a rotation. */
  adminTokens: readonly string[];
}

export interface Settings {
  inbound: Direction<InboundSettings>;
  outbound: Direction<OutboundSettings>;
  admin: Direction<AdminSettings>;
}

// Secrets set through the dashboard or `wrangler secret put` often carry a
// stray newline; an empty value means "not set".
const present = z.pipe(
  mapped(z.string(), (value) => value.trim()),
  z.string().check(z.minLength(1)),
);

// A comma separates the old and the new value while a secret is rotated.
const secretList = z.pipe(
  mapped(present, (value) =>
    value
      .split(",")
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
  ),
  z.array(z.string()).check(z.minLength(1, "holds no value"), z.maxLength(2, "holds more than two values")),
);

const httpUrl = mapped(z.pipe(present, z.url({ protocol: /^https?$/, error: "must be an http(s) URL" })), (url) =>
  url.replace(/\/+$/, ""),
);

const inboundSchema = z.object({
  SEGMENT_WRITE_KEY: present,
  VERO_WEBHOOK_TOKEN: secretList,
  SEGMENT_API_HOST: z._default(httpUrl, DEFAULT_SEGMENT_API_HOST),
});

const outboundSchema = z.object({
  SEGMENT_SHARED_SECRET: secretList,
  VERO_API_URL: z._default(httpUrl, DEFAULT_VERO_API_URL),
  VERO_AUTH_TOKEN: z.optional(present),
  VERO_TRACKING_API_KEY: z.optional(present),
});

const adminSchema = z.object({
  ADMIN_TOKEN: secretList,
});

const isUnset = (value: unknown) => value === undefined || (typeof value === "string" && value.trim() === "");

/** Unset values (also empty strings) are dropped so that defaults apply and "missing" is told apart from "invalid". */
function definedOnly(env: Env, names: readonly string[]): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (const name of names) {
    const value = (env as Record<string, unknown>)[name];
    if (!isUnset(value)) record[name] = value;
  }
  return record;
}

function direction<S extends z.ZodMiniObject, T>(
  schema: S,
  env: Env,
  build: (parsed: z.output<S>) => T,
  extraMissing: string[] = [],
): Direction<T> {
  const names = Object.keys(schema.shape);
  const result = schema.safeParse(definedOnly(env, names));
  if (result.success && extraMissing.length === 0) return { ready: true, settings: build(result.data) };
  const missing: string[] = [];
  const invalid: string[] = [];
  for (const issue of result.error?.issues ?? []) {
    const name = String(issue.path[0]);
    if (isUnset((env as Record<string, unknown>)[name])) missing.push(name);
    else invalid.push(`${name} ${issue.message}`);
  }
  return { ready: false, missing: [...new Set([...missing, ...extraMissing])], invalid };
}

export function parseSettings(env: Env): Settings {
  return {
    inbound: direction(inboundSchema, env, (s) => ({
      segmentWriteKey: s.SEGMENT_WRITE_KEY,
      segmentApiHost: s.SEGMENT_API_HOST,
      webhookTokens: s.VERO_WEBHOOK_TOKEN,
    })),
    outbound: direction(
      outboundSchema,
      env,
      (s) => ({
        veroApiUrl: s.VERO_API_URL,
        // The newer key wins when both are set: it is what Vero issues today.
        veroCredential: s.VERO_TRACKING_API_KEY
          ? { tracking_api_key: s.VERO_TRACKING_API_KEY }
          : { auth_token: s.VERO_AUTH_TOKEN as string },
        sharedSecrets: s.SEGMENT_SHARED_SECRET,
      }),
      isUnset(env.VERO_AUTH_TOKEN) && isUnset(env.VERO_TRACKING_API_KEY)
        ? ["VERO_AUTH_TOKEN or VERO_TRACKING_API_KEY"]
        : [],
    ),
    admin: direction(adminSchema, env, (s) => ({ adminTokens: s.ADMIN_TOKEN })),
  };
}

// Workers hand the same env object to every request of an isolate, so this
// parses once per isolate; a test that builds its own env gets its own entry.
const cache = new WeakMap<object, Settings>();

export function settingsFor(env: Env): Settings {
  let settings = cache.get(env);
  if (!settings) {
    settings = parseSettings(env);
    cache.set(env, settings);
  }
  return settings;
}

/** The sentence a 503 carries: exactly what to set or fix. */
export function describeUnready(
  name: "inbound" | "outbound" | "admin",
  state: { missing: string[]; invalid: string[] },
): string {
  const parts: string[] = [];
  if (state.missing.length > 0) parts.push(`set ${state.missing.join(", ")}`);
  if (state.invalid.length > 0) parts.push(`fix ${state.invalid.join("; ")}`);
  return `${name} is not configured: ${parts.join("; ")}`;
}

const sampleRateSchema = z.pipe(z.coerce.number(), z.number().check(z.minimum(0), z.maximum(1)));
const sampleRates = new WeakMap<object, number>();

/**
 * LOG_SAMPLE_RATE, validated once per env (so once per isolate). Like the
 * retry base, it has no response to put a 503 in: an invalid value is
 * logged and the default applies, as a typo must not stop a route or a
 * consumer. The value itself is not logged: it may be set as a secret.
 */
export function logSampleRate(env: Pick<Env, "LOG_SAMPLE_RATE">): number {
  let rate = sampleRates.get(env);
  if (rate === undefined) {
    const raw = env.LOG_SAMPLE_RATE;
    const parsed = isUnset(raw) ? undefined : sampleRateSchema.safeParse(String(raw).trim());
    if (parsed && !parsed.success)
      log("error", `LOG_SAMPLE_RATE is not a number from 0 to 1; using ${DEFAULT_LOG_SAMPLE_RATE}`, {});
    rate = parsed?.success ? parsed.data : DEFAULT_LOG_SAMPLE_RATE;
    sampleRates.set(env, rate);
  }
  return rate;
}
