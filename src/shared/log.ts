/**
 * Structured logs: one JSON object per line, which Workers Logs indexes.
 * Callers pass facts (route, outcome, status, counts, messageIds), never
 * payloads: emails and secrets go through `fingerprint` first.
 */
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
  return text.replace(EMAILS, (email) => fingerprint(email));
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
  const safe: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value === "string") safe[name] = safeValue(value);
    else if (Array.isArray(value))
      safe[name] = value.map((item: string | number) => (typeof item === "string" ? safeValue(item) : item));
    else safe[name] = value;
  }
  const line = JSON.stringify({ level, msg, ...safe });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

/**
 * A short, stable stand-in for a value that must not be logged in clear
 * (an email, a user id that is an email): the same input gives the same
 * fingerprint, so log lines can still be correlated.
 */
export function fingerprint(value: string): string {
  // FNV-1a, 64 bit: synchronous (crypto.subtle is not) and enough to correlate log lines.
  let hash = 0xcbf29ce484222325n;
  for (let i = 0; i < value.length; i++) {
    hash ^= BigInt(value.charCodeAt(i));
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return `fp:${hash.toString(16).padStart(16, "0")}`;
}

/** Renders an error for a log line without its stack, which may quote payloads. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
