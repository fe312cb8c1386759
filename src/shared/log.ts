/**
 * Structured logs: one JSON object per line, which Workers Logs indexes.
 * Callers pass facts (route, outcome, status, counts, messageIds), never
 * payloads: emails and secrets go through `fingerprint` first.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

export interface LogFields {
  [field: string]: string | number | boolean | null | undefined | readonly (string | number)[];
}

export function log(level: LogLevel, msg: string, fields: LogFields = {}): void {
  const line = JSON.stringify({ level, msg, ...fields });
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
