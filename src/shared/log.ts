/**
 * Structured logs: one JSON object per line, which Workers Logs indexes.
 * Callers pass facts (route, outcome, status, counts, messageIds), never
 * payloads: emails and secrets go through `fingerprint` first.
 *
 * Failures are always logged; successes only for a sample of messageIds
 * (`logSampled`), because at millions of events a day the success lines
 * are most of the CPU and of the bill, and the counts come from elsewhere.
 */
import { createHash } from "node:crypto";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface LogFields {
  [field: string]: string | number | boolean | null | undefined | readonly (string | number)[];
}

/** Longer strings are cut: a field quoting a payload (an unknown Vero type, a messageId) could be a megabyte. */
const MAX_FIELD_CHARS = 300;

// Anything shaped like local@domain, deliberately loose: a missed email is a leak, a false hit only a fingerprint.
const EMAILS = /[^\s@"'<>(),;:[\]{}]+@[^\s@"'<>(),;:[\]{}]+/g;

/** Replaces every email-like part of `text` with its fingerprint. */
export function redactEmails(text: string): string {
  // Every value of every line passes here, and the pattern backtracks over each position of a text
  // without '@'; most values (routes, outcomes, ids) have none.
  return text.includes("@") ? text.replace(EMAILS, (email) => fingerprint(email)) : text;
}

function safeValue(value: string): string {
  const redacted = redactEmails(value);
  return redacted.length > MAX_FIELD_CHARS ? `${redacted.slice(0, MAX_FIELD_CHARS)}...` : redacted;
}

/**
 * Writes one JSON line. Every string value passes through `redactEmails`
 * and is shortened: the last line of defence should a caller log a value
 * that came from a payload. Field names are the caller's own constants.
 */
export function log(level: LogLevel, msg: string, fields: LogFields = {}): void {
  // Built in one object: a field named level or msg overrides as a spread would.
  const line: Record<string, unknown> = { level, msg };
  for (const name in fields) {
    const value = fields[name];
    if (typeof value === "string") line[name] = safeValue(value);
    else if (Array.isArray(value)) line[name] = value.map(safeItem);
    else line[name] = value;
  }
  const text = JSON.stringify(line);
  if (level === "error") console.error(text);
  else if (level === "warn") console.warn(text);
  else console.log(text);
}

const safeItem = (item: string | number) => (typeof item === "string" ? safeValue(item) : item);

/**
 * A short, stable stand-in for a value that must not be logged in clear
 * (an email, a user id that is an email): the same input gives the same
 * fingerprint, so log lines can still be correlated.
 */
export function fingerprint(value: string): string {
  return `fp:${createHash("sha256").update(value).digest("hex").slice(0, 16)}`;
}

/**
 * LOG_SAMPLE_RATE's default: at a few million events a day, tens of
 * thousands of success lines, enough to see every kind of event.
 */
export const DEFAULT_LOG_SAMPLE_RATE = 0.01;

/** Share of messageIds whose success lines are written; set per invocation by `configureLogs`. */
let sampleRate = DEFAULT_LOG_SAMPLE_RATE;

/** Called at the start of every invocation with the validated LOG_SAMPLE_RATE. */
export function configureLogs(options: { sampleRate: number }): void {
  sampleRate = options.sampleRate;
}

/**
 * Whether the success lines of this messageId are written: the first 32
 * bits of its SHA-256 against the rate, so the route, the consumer and
 * every delivery attempt of one event decide alike, in any isolate.
 * No messageId: only at rate 1, as nothing could tie its lines together.
 */
export function isSampled(messageId: string | null | undefined, rate = sampleRate): boolean {
  if (rate >= 1) return true;
  if (rate <= 0 || !messageId) return false;
  return createHash("sha256").update(messageId).digest().readUInt32BE(0) / 2 ** 32 < rate;
}

/** The sampled ones among `messageIds`, in order. */
export function sampledOf(messageIds: readonly (string | null | undefined)[]): string[] {
  return messageIds.filter((id): id is string => isSampled(id));
}

/**
 * The info line of a success, written only when one of its messageIds is
 * sampled. Failures go through `log`, always.
 */
export function logSampled(
  messageIds: string | null | undefined | readonly (string | null | undefined)[],
  msg: string,
  fields: LogFields = {},
): void {
  const ids = typeof messageIds === "string" || !messageIds ? [messageIds] : messageIds;
  if (ids.some((id) => isSampled(id))) log("info", msg, fields);
}

/** Renders an error for a log line without its stack, which may quote payloads. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
