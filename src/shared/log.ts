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
  // FNV-1a, 64 bit, over UTF-16 code units: synchronous (crypto.subtle is not) and enough to
  // correlate log lines. Kept in two 32-bit halves, as BigInt arithmetic cost far more.
  // The prime is 2^40 + 0x1b3: h * prime = h * 0x1b3 + (h << 40), whose high half gets lo << 8.
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < value.length; i++) {
    lo ^= value.charCodeAt(i);
    const low = (lo >>> 0) * 0x1b3;
    const carry = Math.floor(low / 0x100000000);
    hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
    lo = low >>> 0;
  }
  return `fp:${hi.toString(16).padStart(8, "0")}${lo.toString(16).padStart(8, "0")}`;
}

/** Renders an error for a log line without its stack, which may quote payloads. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
