/**
 * The dead-letter filter, as the JSON admin routes take it in a query and the
 * console in a query or a form: one schema, one 400 naming the first problem.
 */
import type { ValidationTargets } from "hono";
import { validator } from "hono/validator";
import * as z from "zod/mini";
import { BadCursor, type DeadLetterFilter, deadLetterSource, listDeadLetters } from "../delivery/ledger.ts";
import { badRequest } from "../shared/errors.ts";
import "../shared/zod.ts";

const hasZone = (value: string) => /[zZ]|[+-]\d\d:?\d\d$/.test(value);
/** ISO 8601; a time without a zone (as a datetime-local field sends it) is read as UTC. */
const asDate = (value: string) => new Date(hasZone(value) ? value : `${value}Z`);

const ISO_TIME = "an ISO date and time such as 2026-11-28T00:00Z";

/** A time filter (`since`, `until`): ISO 8601, read as UTC without a zone; missing, it says it is required. */
export const isoTimeSchema = z.pipe(
  z
    .string({ error: (issue) => (issue.input === undefined ? `is required: ${ISO_TIME}` : `must be ${ISO_TIME}`) })
    .check(
      z.maxLength(40, `must be ${ISO_TIME}`),
      z.refine((value) => !Number.isNaN(asDate(value).getTime()), { error: `must be ${ISO_TIME}` }),
    ),
  z.transform((value) => asDate(value).toISOString()),
);

const LIMIT_MESSAGE = "must be a whole number from 1 to 1000";

export const deadLetterQuerySchema = z.object({
  source: z.optional(z.enum(deadLetterSource.options, { error: `must be ${deadLetterSource.options.join(" or ")}` })),
  reason: z.optional(z.string().check(z.maxLength(200, "is over 200 characters"))),
  since: z.optional(isoTimeSchema),
  // Opaque: the ledger decodes it, and names one it did not hand out.
  cursor: z.optional(z.string().check(z.maxLength(500, "is not one this bridge returned"))),
  limit: z.optional(
    z.pipe(
      z.coerce.number(),
      z.int({ error: LIMIT_MESSAGE }).check(z.minimum(1, LIMIT_MESSAGE), z.maximum(1000, LIMIT_MESSAGE)),
    ),
  ),
});

const KEYS = ["source", "reason", "since", "cursor", "limit"] as const;

/** The filter in `input`, blank fields left out (an empty form field means "any"); a 400 naming the first problem. */
export function parseDeadLetterQuery(input: Record<string, unknown>): DeadLetterFilter {
  const present = Object.fromEntries(
    KEYS.flatMap((key) => {
      const value = input[key];
      return typeof value === "string" && value.trim() !== "" ? [[key, value.trim()]] : [];
    }),
  );
  return parseQuery(deadLetterQuerySchema, present);
}

/** `input` by `schema`, or a 400 naming the first problem: `since: ...`. */
export function parseQuery<T>(schema: z.ZodMiniType<T>, input: Record<string, unknown>): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw badRequest(`${issue?.path.join(".") || "query"}: ${issue?.message ?? "is invalid"}`);
}

/** Hono's validator over `parseDeadLetterQuery`, for a query string or a form. */
export const deadLetterQuery = <T extends keyof Pick<ValidationTargets, "query" | "form">>(target: T) =>
  validator(target, (value) => parseDeadLetterQuery(value as Record<string, unknown>));

/** One page of the letters `filter` matches; a cursor this bridge did not hand out is a 400. */
export async function listPage(db: D1Database, filter: DeadLetterFilter) {
  try {
    return await listDeadLetters(db, filter);
  } catch (error) {
    if (error instanceof BadCursor) throw badRequest(`cursor: ${error.message}`);
    throw error;
  }
}
