/**
 * Reads the bridge's own log lines out of `wrangler dev`'s output: the
 * consumers' batch summaries carry what the bench cannot see from outside
 * (the ledger's queries per batch).
 */

/** The JSON log object a line of wrangler's output carries, when its `msg` is `msg`. */
export function logLine(line: string, msg: string): Record<string, unknown> | undefined {
  // Cheap test first: wrangler prints every request and queue batch too.
  if (!line.includes(`"${msg}"`)) return undefined;
  const start = line.indexOf("{");
  if (start === -1) return undefined;
  try {
    const value: unknown = JSON.parse(line.slice(start));
    return typeof value === "object" && value !== null && (value as { msg?: unknown }).msg === msg
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
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
