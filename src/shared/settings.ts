import * as z from "zod/mini";
import { type DestinationFilter, parseDestinationFilters } from "./destination-filters.ts";
import type { Env } from "./env.ts";
import { DEFAULT_LOG_SAMPLE_RATE, log } from "./log.ts";
import { MAX_RETRIES } from "./queue-limits.ts";
import { DEFAULT_RETRY_POLICY, maxHorizonSeconds, RETRY_DEFAULTS, type RetryPolicy } from "./retry-policy.ts";
import { mapped } from "./zod.ts";

export const DEFAULT_SEGMENT_API_HOST = "https://api.segment.io";
export const DEFAULT_VERO_API_URL = "https://api.getvero.com/api/v2";

/** What the Segment queue's consumer needs: where to send, and as which source. */
export interface SegmentTarget {
  segmentWriteKey: string;
  /** Origin of Segment's Tracking API, without a trailing slash. */
  segmentApiHost: string;
}

export interface InboundSettings extends SegmentTarget {
  /** One value, or two during a rotation. */
  webhookTokens: readonly string[];
  /** VERO_WEBHOOK_TYPES_DROPPED: Vero webhook types answered 2xx, counted as filtered, and not forwarded. */
  droppedTypes: readonly string[];
}

export type VeroCredential = { auth_token: string } | { tracking_api_key: string };

/** What the Vero queue's consumer needs: where to send, and with which credential. */
export interface VeroTarget {
  /** Base of Vero's Track API v2, without a trailing slash. */
  veroApiUrl: string;
  /** VERO_ACCOUNT: with the URL, the Vero project whose users the mailboxes are (never the credential). */
  veroAccount?: string;
  /** VERO_TRACK_CONCURRENCY: track calls of one user in flight at once between two calls that change it. */
  trackConcurrency?: number;
  veroCredential: VeroCredential;
}

export interface OutboundSettings extends VeroTarget {
  /** One value, or two during a rotation. */
  sharedSecrets: readonly string[];
  /** Whether a JSON array on `/segment` may go by an X-Signature over its first event alone (weaker). */
  acceptFirstEventSignature: boolean;
  /** DESTINATION_FILTERS, compiled; applied before mapping. */
  filters: readonly DestinationFilter[];
  /** VERO_ANONYMOUS_IDS: an event without a userId (or email) goes by its anonymousId. */
  anonymousIds: boolean;
}

/** A part of the bridge is either configured, ready to use, or says which settings to fix. */
export type Configured<T> = { ready: true; settings: T } | { ready: false; missing: string[]; invalid: string[] };

export interface AdminSettings {
  /** One value, or two during a rotation. */
  adminTokens: readonly string[];
}

export interface Settings {
  /** The webhook route: the Segment settings and the webhook token. */
  inbound: Configured<InboundSettings>;
  /** The Segment-facing routes: the Vero settings and the shared secret. */
  outbound: Configured<OutboundSettings>;
  admin: Configured<AdminSettings>;
  /**
   * The queue consumers need only the upstream they deliver to: closing a
   * route by removing its secret must not stop what is already queued.
   */
  consumers: { segment: Configured<SegmentTarget>; vero: Configured<VeroTarget> };
  /**
   * The consumers' retry schedule, what was wrong with its settings (the defaults then apply), and
   * `conflict`: a horizon the retention cannot hold, which keeps both consumers from being ready.
   */
  retry: { policy: RetryPolicy; invalid: string[]; conflict?: string };
  /** ALERT_* and PUBLIC_URL, with what was wrong with them. */
  alerts: AlertSettings;
  /** LEDGER_RETENTION_DAYS: how long counters, sent alerts and recorded calls are kept. */
  retentionDays: number;
  /** LOG_SAMPLE_RATE: the share of messageIds whose success lines are logged. */
  logSampleRate: number;
  /** COUNTS_REPORT_SECONDS, in ms: how long a mailbox's counts wait for their report. */
  countsReportMs: number;
  /** BRIDGE_INSTANCE (development only): the token `GET /health` repeats as `instance`. */
  instance?: string;
}

// Secrets set through the dashboard or `wrangler secret put` often carry a
// stray newline; an empty value means "not set".
const present = z.pipe(
  mapped(z.string(), (value) => value.trim()),
  z.string().check(z.minLength(1)),
);

/** What a secret the operator chooses must reach: `openssl rand -hex 32` gives 64 characters. */
const MIN_SECRET_LENGTH = 32;

// A comma separates the old and the new value while a secret is rotated; each
// value must be long enough that it cannot be guessed online.
const secretList = z.pipe(
  mapped(present, (value) =>
    value
      .split(",")
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
  ),
  z
    .array(
      z
        .string()
        .check(
          z.minLength(
            MIN_SECRET_LENGTH,
            `must be at least ${MIN_SECRET_LENGTH} characters (generate one with openssl rand -hex 32)`,
          ),
        ),
    )
    .check(z.minLength(1, "holds no value"), z.maxLength(2, "holds more than two values")),
);

const httpUrl = mapped(z.pipe(present, z.url({ protocol: /^https?$/, error: "must be an http(s) URL" })), (url) =>
  url.replace(/\/+$/, ""),
);

const segmentShape = {
  SEGMENT_WRITE_KEY: present,
  SEGMENT_API_HOST: z._default(httpUrl, DEFAULT_SEGMENT_API_HOST),
};

const veroShape = {
  VERO_API_URL: z._default(httpUrl, DEFAULT_VERO_API_URL),
  VERO_AUTH_TOKEN: z.optional(present),
  VERO_TRACKING_API_KEY: z.optional(present),
  VERO_ACCOUNT: z.optional(z.pipe(present, z.string().check(z.maxLength(100, "must be at most 100 characters")))),
  // A mailbox's calls share one invocation, which keeps at most 6 connections open.
  VERO_TRACK_CONCURRENCY: z._default(
    z.pipe(
      mapped(present, Number),
      z.int("must be a whole number").check(z.minimum(1, "must be at least 1"), z.maximum(6, "must be at most 6")),
    ),
    1,
  ),
};

// Off unless set: such a signature authenticates the first event of an array and nothing after it.
const offByDefault = z._default(z.stringbool({ error: 'must be "true" or "false"' }), false);

// A JSON var: wrangler hands a TOML table or array over as a value, a dashboard var as text.
const destinationFilters = z.pipe(
  z.unknown(),
  z.transform((raw: unknown, ctx) => {
    const parsed = parseDestinationFilters(raw);
    if (parsed.ok) return parsed.filters;
    ctx.issues.push({ code: "custom", message: parsed.error, input: raw });
    return z.NEVER;
  }),
);

// Vero's types are lower-case words (`sent`, `user_updated`); anything else is a typo that would drop nothing.
const typeList = z.pipe(
  mapped(present, (value) =>
    value
      .split(",")
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
  ),
  z.array(z.string().check(z.regex(/^[a-z_]+$/, "must list Vero webhook types such as sent,delivered"))),
);

const segmentSchema = z.object(segmentShape);
const veroSchema = z.object(veroShape);
const inboundSchema = z.object({
  ...segmentShape,
  VERO_WEBHOOK_TOKEN: secretList,
  VERO_WEBHOOK_TYPES_DROPPED: z._default(typeList, []),
});
const outboundSchema = z.object({
  ...veroShape,
  SEGMENT_SHARED_SECRET: secretList,
  SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: offByDefault,
  DESTINATION_FILTERS: z._default(destinationFilters, []),
  VERO_ANONYMOUS_IDS: offByDefault,
});

// The admin routes take ADMIN_TOKEN as a bearer token, whose syntax (RFC 6750) allows only these characters.
const bearerTokens = z.pipe(
  secretList,
  z.array(
    z.string().check(z.regex(/^[A-Za-z0-9._~+/-]+=*$/, "must use only letters, digits and ._~+/-= (a bearer token)")),
  ),
);

const adminSchema = z.object({
  ADMIN_TOKEN: bearerTokens,
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
): Configured<T> {
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
  return { ready: false, missing: [...new Set([...missing, ...extraMissing])], invalid: [...new Set(invalid)] };
}

const segmentTarget = (s: z.output<typeof segmentSchema>): SegmentTarget => ({
  segmentWriteKey: s.SEGMENT_WRITE_KEY,
  segmentApiHost: s.SEGMENT_API_HOST,
});

const veroTarget = (s: z.output<typeof veroSchema>): VeroTarget => ({
  veroApiUrl: s.VERO_API_URL,
  ...(s.VERO_ACCOUNT === undefined ? {} : { veroAccount: s.VERO_ACCOUNT }),
  trackConcurrency: s.VERO_TRACK_CONCURRENCY,
  // The newer key wins when both are set: it is what Vero issues today.
  veroCredential: s.VERO_TRACKING_API_KEY
    ? { tracking_api_key: s.VERO_TRACKING_API_KEY }
    : { auth_token: s.VERO_AUTH_TOKEN as string },
});

const wholeSeconds = z.pipe(
  z.coerce.number(),
  // At 0 every retry would come at once, and the 100 that Queues allows would be spent in seconds.
  z
    .int()
    .check(z.minimum(1, "must be at least 1"), z.maximum(RETRY_DEFAULTS.capSeconds, "must be at most the 3600 s cap")),
);
// Queues keeps a message from 60 s to 14 days; hours may be fractional (a test's short retention).
const hours = z.pipe(
  z.coerce.number(),
  z.number().check(z.positive(), z.maximum(14 * 24, "must be at most 336 (14 days)")),
);

/**
 * A setting read where no response can carry a 503 (the consumers, the cron,
 * the logs): unset gives `fallback`; an invalid value gives `fallback` too,
 * and its problem is added to `invalid` for the caller to report.
 */
function readOrDefault<T>(
  env: Env,
  name: string,
  schema: z.ZodMiniType<T>,
  fallback: T,
  invalid: string[],
  problem?: string,
): T {
  const raw = (env as Record<string, unknown>)[name];
  if (isUnset(raw)) return fallback;
  const parsed = schema.safeParse(String(raw).trim());
  if (parsed.success) return parsed.data;
  invalid.push(`${name} ${problem ?? parsed.error.issues[0]?.message ?? "is invalid"}`);
  return fallback;
}

/**
 * QUEUE_RETRY_BASE_SECONDS, QUEUE_RETRY_HORIZON_HOURS and QUEUE_RETENTION_HOURS.
 * A consumer has no response to put a 503 in, so a bad value is logged and
 * its default applies. A horizon past what the retention allows cannot hold
 * (Queues would delete a message before it became a dead letter): it is a
 * `conflict` that /health and `npm start` report, and the consumers keep
 * their messages until it is fixed; the schedule is cut to the retention.
 */
function parseRetryPolicy(env: Env): Settings["retry"] {
  const invalid: string[] = [];
  const read = <T>(name: keyof Env, schema: z.ZodMiniType<T>, fallback: T): T =>
    readOrDefault(env, name, schema, fallback, invalid);
  const baseSeconds = read("QUEUE_RETRY_BASE_SECONDS", wholeSeconds, DEFAULT_RETRY_POLICY.baseSeconds);
  const retentionSeconds = read("QUEUE_RETENTION_HOURS", hours, RETRY_DEFAULTS.retentionHours) * 3_600;
  const wanted = read("QUEUE_RETRY_HORIZON_HOURS", hours, RETRY_DEFAULTS.horizonHours) * 3_600;
  const allowed = maxHorizonSeconds(retentionSeconds);
  const hoursAllowed = Math.floor(Math.max(0, allowed) / 36) / 100;
  const conflict =
    wanted > allowed
      ? `QUEUE_RETRY_HORIZON_HOURS (${wanted / 3_600}) must end 1 hour before QUEUE_RETENTION_HOURS (${retentionSeconds / 3_600}) and within ${MAX_RETRIES} retries: set it to ${hoursAllowed} or less`
      : undefined;
  return {
    ...(conflict ? { conflict } : {}),
    policy: {
      ...DEFAULT_RETRY_POLICY,
      baseSeconds,
      retentionSeconds,
      horizonSeconds: Math.max(0, Math.min(wanted, allowed)),
    },
    invalid,
  };
}

export function parseSettings(env: Env): Settings {
  const noVeroCredential =
    isUnset(env.VERO_AUTH_TOKEN) && isUnset(env.VERO_TRACKING_API_KEY)
      ? ["VERO_AUTH_TOKEN or VERO_TRACKING_API_KEY"]
      : [];
  const retry = parseRetryPolicy(env);
  const consumer = <T>(state: Configured<T>): Configured<T> => {
    if (!retry.conflict) return state;
    return state.ready
      ? { ready: false, missing: [], invalid: [retry.conflict] }
      : { ...state, invalid: [...state.invalid, retry.conflict] };
  };
  return {
    inbound: direction(inboundSchema, env, (s) => ({
      ...segmentTarget(s),
      webhookTokens: s.VERO_WEBHOOK_TOKEN,
      droppedTypes: s.VERO_WEBHOOK_TYPES_DROPPED,
    })),
    outbound: direction(
      outboundSchema,
      env,
      (s) => ({
        ...veroTarget(s),
        sharedSecrets: s.SEGMENT_SHARED_SECRET,
        acceptFirstEventSignature: s.SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE,
        filters: s.DESTINATION_FILTERS,
        anonymousIds: s.VERO_ANONYMOUS_IDS,
      }),
      noVeroCredential,
    ),
    admin: direction(adminSchema, env, (s) => ({ adminTokens: s.ADMIN_TOKEN })),
    consumers: {
      segment: consumer(direction(segmentSchema, env, segmentTarget)),
      vero: consumer(direction(veroSchema, env, veroTarget, noVeroCredential)),
    },
    retry,
    alerts: parseAlertSettings(env),
    retentionDays: parseRetentionDays(env),
    logSampleRate: parseLogSampleRate(env),
    countsReportMs: parseCountsReportSeconds(env) * 1000,
    ...(isUnset(env.BRIDGE_INSTANCE) ? {} : { instance: String(env.BRIDGE_INSTANCE) }),
  };
}

// Workers hand the same env object to every request of an isolate, so this
// parses once per isolate (and a setting that falls back to its default is
// logged once); a test that builds its own env gets its own entry.
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
  name: "inbound" | "outbound" | "admin" | "the Segment consumer" | "the Vero consumer",
  state: { missing: string[]; invalid: string[] },
): string {
  const parts: string[] = [];
  if (state.missing.length > 0) parts.push(`set ${state.missing.join(", ")}`);
  if (state.invalid.length > 0) parts.push(`fix ${state.invalid.join("; ")}`);
  return `${name} is not configured: ${parts.join("; ")}`;
}

const sampleRateSchema = z.pipe(z.coerce.number(), z.number().check(z.minimum(0), z.maximum(1)));

/**
 * LOG_SAMPLE_RATE. Like the retry base, it has no response to put a 503 in:
 * an invalid value is logged and the default applies, as a typo must not
 * stop a route or a consumer. The value itself is not logged: it may be set
 * as a secret.
 */
function parseLogSampleRate(env: Env): number {
  const invalid: string[] = [];
  const rate = readOrDefault(env, "LOG_SAMPLE_RATE", sampleRateSchema, DEFAULT_LOG_SAMPLE_RATE, invalid);
  if (invalid.length > 0)
    log("error", `LOG_SAMPLE_RATE is not a number from 0 to 1; using ${DEFAULT_LOG_SAMPLE_RATE}`, {});
  return rate;
}

export const DEFAULT_COUNTS_REPORT_SECONDS = 60;
const countsReportSchema = z.pipe(z.coerce.number(), z.int().check(z.minimum(1), z.maximum(3600)));

/**
 * COUNTS_REPORT_SECONDS: how fresh the console's outbound counts are
 * against what each report costs (an alarm, a counter shard call and some
 * eight rows written per mailbox). Invalid: logged, and the default applies.
 */
function parseCountsReportSeconds(env: Env): number {
  const invalid: string[] = [];
  const seconds = readOrDefault(
    env,
    "COUNTS_REPORT_SECONDS",
    countsReportSchema,
    DEFAULT_COUNTS_REPORT_SECONDS,
    invalid,
  );
  if (invalid.length > 0)
    log(
      "error",
      `COUNTS_REPORT_SECONDS is not a whole number of seconds from 1 to 3600; using ${DEFAULT_COUNTS_REPORT_SECONDS}`,
      {},
    );
  return seconds;
}

// ---- Alerts ----------------------------------------------------------------

/** How an alert's body is shaped: `chat` for Slack and Discord (and Teams workflows), `pagerduty` for Events v2. */
const alertFormats = ["chat", "json", "pagerduty"] as const;
export type AlertFormat = (typeof alertFormats)[number];

export interface AlertSettings {
  /** Absent: alerts are off. Only `host` may be logged or shown: the URL itself is a secret. */
  webhook?: { url: string; host: string };
  format: AlertFormat;
  /** PagerDuty's integration key (format `pagerduty`). */
  routingKey?: string;
  /** A direction's share of failed attempts over 15 minutes above which it alerts. */
  failureRate: number;
  /** Fewer attempts than this in 15 minutes say nothing about a rate. */
  minAttempts: number;
  /** A mailbox whose oldest job is older than this is stalled. */
  stalledMinutes: number;
  /** A condition that persists is sent again after this long. */
  repeatMinutes: number;
  /** A direction whose p95 delivery latency over 15 minutes is above this many seconds alerts. */
  latencySeconds: number;
  /** The bridge's own origin, for links to the console; without it, links are paths. */
  publicUrl?: string;
  /** What was wrong with the settings (a default then applies, or alerts are off). */
  invalid: string[];
}

export const ALERT_DEFAULTS = {
  failureRate: 0.2,
  minAttempts: 20,
  stalledMinutes: 60,
  repeatMinutes: 240,
  latencySeconds: 300,
} as const;

const share = z.pipe(z.coerce.number(), z.number().check(z.gt(0), z.maximum(1)));
const minutes = z.pipe(z.coerce.number(), z.int().check(z.minimum(1), z.maximum(7 * 24 * 60)));
const attempts = z.pipe(z.coerce.number(), z.int().check(z.minimum(1), z.maximum(1_000_000)));
/** Up to 48 hours, the histogram's last bound: above it every latency reads the same. */
const seconds = z.pipe(z.coerce.number(), z.number().check(z.gt(0), z.maximum(172_800)));

/**
 * ALERT_* and PUBLIC_URL. The cron has no response to put a 400 in: a bad
 * threshold falls back to its default and is reported (console, logs); a bad
 * ALERT_WEBHOOK_URL turns alerts off, as there is nowhere to send them.
 */
function parseAlertSettings(env: Env): AlertSettings {
  const invalid: string[] = [];
  const read = <T>(name: string, schema: z.ZodMiniType<T>, fallback: T, problem: string): T =>
    readOrDefault(env, name, schema, fallback, invalid, problem);
  const url = read("ALERT_WEBHOOK_URL", httpUrl, undefined, "must be an http(s) URL; alerts are off");
  const publicUrl = read("PUBLIC_URL", httpUrl, undefined, "must be an http(s) URL");
  const format = read("ALERT_WEBHOOK_FORMAT", z.enum(alertFormats), "chat", `must be ${alertFormats.join(", ")}`);
  const routingKey = read("ALERT_ROUTING_KEY", present, undefined, "is empty");
  if (url && format === "pagerduty" && !routingKey) invalid.push("ALERT_ROUTING_KEY must be set with format pagerduty");
  return {
    webhook: url ? { url, host: new URL(url).host } : undefined,
    format,
    routingKey,
    failureRate: read("ALERT_FAILURE_RATE", share, ALERT_DEFAULTS.failureRate, "must be a number above 0, at most 1"),
    minAttempts: read(
      "ALERT_MIN_ATTEMPTS",
      attempts,
      ALERT_DEFAULTS.minAttempts,
      "must be a whole number of at least 1",
    ),
    stalledMinutes: read(
      "ALERT_STALLED_MINUTES",
      minutes,
      ALERT_DEFAULTS.stalledMinutes,
      "must be whole minutes, 1 to 10080",
    ),
    repeatMinutes: read(
      "ALERT_REPEAT_MINUTES",
      minutes,
      ALERT_DEFAULTS.repeatMinutes,
      "must be whole minutes, 1 to 10080",
    ),
    latencySeconds: read(
      "ALERT_LATENCY_SECONDS",
      seconds,
      ALERT_DEFAULTS.latencySeconds,
      "must be a number of seconds above 0, at most 172800",
    ),
    publicUrl,
    invalid,
  };
}

export const DEFAULT_RETENTION_DAYS = 7;
const MAX_RETENTION_DAYS = 3650;
const retentionSchema = z.pipe(
  z.coerce.number(),
  z.int().check(z.minimum(DEFAULT_RETENTION_DAYS), z.maximum(MAX_RETENTION_DAYS)),
);

/**
 * LEDGER_RETENTION_DAYS. Read by the cron and the mailboxes, which have no
 * response to put a 503 in: an invalid value is logged and the default
 * applies, since a shorter window than 7 days would let re-sent events through.
 */
function parseRetentionDays(env: Env): number {
  const invalid: string[] = [];
  const days = readOrDefault(env, "LEDGER_RETENTION_DAYS", retentionSchema, DEFAULT_RETENTION_DAYS, invalid);
  if (invalid.length > 0)
    log("error", `LEDGER_RETENTION_DAYS is not a whole number of days from 7 to ${MAX_RETENTION_DAYS}; using 7`, {});
  return days;
}
