/**
 * Schemas use `zod/mini`, importing it as a namespace themselves: its
 * functional API lets the bundler keep only the validators they name.
 * Mini ships no locale, so English is installed here, for the default
 * messages that reach dead letters and logs.
 */
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";

z.config(en());

/** `schema` then `fn` on its output: classic zod's `.transform()`. */
export const mapped = <S extends z.ZodMiniType, O>(
  schema: S,
  fn: (value: z.output<S>, ctx: z.core.ParsePayload) => O,
) => z.pipe(schema, z.transform(fn));

/** Where an issue sits in the value, as `user.id` or `batch.0.type`; empty for the value itself. */
export const issuePath = (issue: z.core.$ZodIssue): string => issue.path.map(String).join(".");

/** One issue as `path message`, `whole` standing for the path when the issue is about the value itself. */
export function describeIssue(issue: z.core.$ZodIssue, whole?: string): string {
  const path = issuePath(issue) || whole;
  return path ? `${path} ${issue.message}` : issue.message;
}

/** The issues as one line, `; `-separated; past `most` of them, the rest counted. */
export function describeIssues(
  error: z.core.$ZodError,
  { whole, most = Number.POSITIVE_INFINITY }: { whole?: string; most?: number } = {},
): string {
  const shown = error.issues.slice(0, most).map((issue) => describeIssue(issue, whole));
  const rest = error.issues.length - shown.length;
  return `${shown.join("; ")}${rest > 0 ? `; and ${rest} more` : ""}`;
}
