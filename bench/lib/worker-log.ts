/**
 * Reads the bridge's own log lines out of `wrangler dev`'s output: the
 * consumers' batch summaries carry what the bench cannot see from outside
 * (the ledger's queries per batch).
 */
import { stripVTControlCharacters } from "node:util";

/**
 * The JSON object a line of wrangler's output carries (the Worker logs one
 * per line), if any. wrangler prints a `console.warn` or `console.error` as
 * `▲ [WARNING]` or `✘ [ERROR]` with the line in bold: its terminal codes go
 * first, or every warning would be lost to the tally.
 */
function jsonOf(output: string): Record<string, unknown> | undefined {
  const line = stripVTControlCharacters(output);
  const start = line.indexOf("{");
  if (start === -1) return undefined;
  try {
    const value: unknown = JSON.parse(line.slice(start));
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The Worker's own log object a line of wrangler's output carries (one with a `msg`), if any. */
export function workerLogObject(line: string): Record<string, unknown> | undefined {
  if (!line.includes('"msg"')) return undefined;
  const value = jsonOf(line);
  return typeof value?.msg === "string" ? value : undefined;
}

/** The JSON log object a line of wrangler's output carries, when its `msg` is `msg`. */
export function logLine(line: string, msg: string): Record<string, unknown> | undefined {
  // Cheap test first: wrangler prints every request and queue batch too.
  if (!line.includes(`"${msg}"`)) return undefined;
  const value = jsonOf(line);
  return value?.msg === msg ? value : undefined;
}

/** What one unit of delivery work cost, as its log line reports it. */
export interface DeliveryWork {
  d1Statements?: number;
  /** Durable Object requests: the calls a line reports, plus the alarm invocation a `mailbox drain` line stands for. */
  doRequests?: number;
  /** Mailbox storage rows, from the runtime's cursor counters (secondary index rows included). */
  doRowsWritten?: number;
  doRowsRead?: number;
}

const DELIVERY_FIELDS = ["d1Statements", "doRequests", "ledgerQueries", "doRowsWritten"] as const;

/**
 * The D1 statements and Durable Object requests a log line reports, from its
 * numeric `d1Statements` and `doRequests`; a line with `ledgerQueries` and no
 * `d1Statements` (the queue consumer's batch summary) counts those as D1
 * statements. Undefined for a line that reports neither.
 */
export function deliveryWork(line: string): DeliveryWork | undefined {
  if (!DELIVERY_FIELDS.some((field) => line.includes(`"${field}"`))) return undefined;
  const value = jsonOf(line);
  if (!value) return undefined;
  const number = (field: string) => (typeof value[field] === "number" ? (value[field] as number) : undefined);
  const requests = number("doRequests");
  // Each mailbox drain line is one alarm run: a billed request the line does not count itself.
  const alarm = value.msg === "mailbox drain" ? 1 : 0;
  const work: DeliveryWork = {
    d1Statements: number("d1Statements") ?? number("ledgerQueries"),
    doRequests: requests === undefined ? undefined : requests + alarm,
    doRowsWritten: number("doRowsWritten"),
    doRowsRead: number("doRowsRead"),
  };
  return work.d1Statements === undefined && work.doRequests === undefined ? undefined : work;
}

export interface FieldStats {
  /** Lines that carried the field as a number. */
  lines: number;
  mean: number;
  max: number;
}

/** Mean and max of a numeric field over the lines that carry it; undefined when none does. */
export function fieldStats(lines: readonly Record<string, unknown>[], field: string): FieldStats | undefined {
  const values = lines.map((line) => line[field]).filter((value): value is number => typeof value === "number");
  if (values.length === 0) return undefined;
  return {
    lines: values.length,
    mean: Math.round((values.reduce((sum, value) => sum + value, 0) / values.length) * 100) / 100,
    max: Math.max(...values),
  };
}
