import { Hono, type MiddlewareHandler } from "hono";
import * as z from "zod/mini";
import {
  discardDeadLetter,
  mustGetDeadLetter as mustGet,
  redriveDeadLetter,
  redriveListed,
  requireLedger,
} from "../delivery/dead-letters.ts";
import {
  BadCursor,
  type DeadLetterFilter,
  deadLetterSource,
  listDeadLetters,
  readCounters,
} from "../delivery/ledger.ts";
import { badRequest, unauthorized } from "./errors.ts";
import { type AppEnv, methodNotAllowed, notConfigured } from "./http.ts";
import { matchesAnySecret } from "./secrets.ts";
import { settingsFor } from "./settings.ts";
import "./zod.ts";

/** The admin routes need the token and the ledger; without either they say which is missing. */
const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const state = settingsFor(c.env).admin;
  if (!state.ready) {
    throw notConfigured("admin", state);
  }
  const match = c.req.header("Authorization")?.match(/^Bearer\s+(\S+)\s*$/i);
  if (!match?.[1]) throw unauthorized("missing Authorization: Bearer <ADMIN_TOKEN>");
  if (!(await matchesAnySecret(match[1], state.settings.adminTokens))) throw unauthorized("wrong admin token");
  requireLedger(c.env);
  await next();
};

const isoTime = z.pipe(
  z.string().check(z.refine((value) => !Number.isNaN(Date.parse(value)), { error: "must be an ISO date and time" })),
  z.transform((value) => new Date(value).toISOString()),
);

const listQuery = z.object({
  source: z.optional(deadLetterSource),
  reason: z.optional(z.string().check(z.minLength(1))),
  since: z.optional(isoTime),
  cursor: z.optional(z.string()),
  limit: z.optional(
    z.pipe(
      z.coerce.number(),
      z
        .int({ error: "must be a whole number from 1 to 1000" })
        .check(
          z.minimum(1, "must be a whole number from 1 to 1000"),
          z.maximum(1000, "must be a whole number from 1 to 1000"),
        ),
    ),
  ),
});

const countersQuery = z.object({ since: isoTime, until: z.optional(isoTime) });

/** A query's first problem, named: `limit: ...`. */
function parseQuery<T>(schema: z.ZodMiniType<T>, query: Record<string, string>): T {
  const parsed = schema.safeParse(query);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw badRequest(`${issue?.path.join(".") || "query"}: ${issue?.message ?? "is invalid"}`);
}

async function listPage(db: D1Database, query: Record<string, string>) {
  const filter: DeadLetterFilter = parseQuery(listQuery, query);
  try {
    return await listDeadLetters(db, filter);
  } catch (error) {
    if (error instanceof BadCursor) throw badRequest(`cursor: ${error.message}`);
    throw error;
  }
}

/** Mounted at `/admin`: bearer `ADMIN_TOKEN`, checked before anything else runs. */
export const adminRoutes = new Hono<AppEnv>()
  .use("*", requireAdmin)
  .get("/dead-letters", async (c) => {
    const page = await listPage(requireLedger(c.env), c.req.query());
    return c.json({ ok: true, ...page });
  })
  .post("/dead-letters/redrive", async (c) => {
    // Re-drives one page at a time, so a huge backlog cannot exhaust one request's limits.
    const db = requireLedger(c.env);
    const page = await listPage(db, c.req.query());
    const redriven = await redriveListed(c.env, db, page.letters);
    return c.json({ ok: true, redriven, cursor: page.cursor });
  })
  .all("/dead-letters/redrive", methodNotAllowed(["POST"]))
  .all("/dead-letters", methodNotAllowed(["GET"]))
  .get("/dead-letters/:id", async (c) =>
    c.json({ ok: true, letter: await mustGet(requireLedger(c.env), c.req.param("id")) }),
  )
  .delete("/dead-letters/:id", async (c) => {
    const db = requireLedger(c.env);
    const letter = await mustGet(db, c.req.param("id"));
    await discardDeadLetter(db, letter);
    return c.json({ ok: true, deleted: letter.id });
  })
  .all("/dead-letters/:id", methodNotAllowed(["GET", "DELETE"]))
  .post("/dead-letters/:id/redrive", async (c) => {
    const letter = await mustGet(requireLedger(c.env), c.req.param("id"));
    await redriveDeadLetter(c.env, letter);
    return c.json({ ok: true, redriven: letter.id });
  })
  .all("/dead-letters/:id/redrive", methodNotAllowed(["POST"]))
  .get("/counters", async (c) => {
    const { since, until } = parseQuery(countersQuery, c.req.query());
    const counters = await readCounters(requireLedger(c.env), {
      since: new Date(since),
      until: until === undefined ? undefined : new Date(until),
    });
    return c.json({ ok: true, counters });
  })
  .all("/counters", methodNotAllowed(["GET"]));
