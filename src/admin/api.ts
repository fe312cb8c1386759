import { Hono, type MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import * as z from "zod/mini";
import {
  discardDeadLetter,
  redriveDeadLetter,
  redriveListed,
  requireDeadLetter,
  requireLedger,
} from "../delivery/dead-letters.ts";
import { readCounters } from "../delivery/ledger.ts";
import { redriveToMailboxes } from "../outbound/mailboxes.ts";
import type { Env } from "../shared/env.ts";
import { unauthorized } from "../shared/errors.ts";
import { type AppEnv, notConfigured } from "../shared/http.ts";
import { matchesAnySecret } from "../shared/secrets.ts";
import { settingsFor } from "../shared/settings.ts";
import { deadLetterQuery, listPage, parseQuery } from "./dead-letter-query.ts";
import "../shared/zod.ts";

const isoTime = z.pipe(
  z.string().check(z.refine((value) => !Number.isNaN(Date.parse(value)), { error: "must be an ISO date and time" })),
  z.transform((value) => new Date(value).toISOString()),
);

/** The admin routes need the token and the ledger; without either they say which is missing. */
const requireAdminSettings: MiddlewareHandler<AppEnv> = async (c, next) => {
  const state = settingsFor(c.env).admin;
  if (!state.ready) throw notConfigured("admin", state);
  await next();
};

/** Hono's bearer auth, its refusals thrown as the bridge's own 401 so that every error has one shape. */
const requireBearer = bearerAuth<AppEnv>({
  verifyToken: async (token, c) => {
    const state = settingsFor(c.env as Env).admin;
    return state.ready && matchesAnySecret(token, state.settings.adminTokens);
  },
  noAuthenticationHeader: {
    message: () => Promise.reject(unauthorized("missing Authorization: Bearer <ADMIN_TOKEN>")),
  },
  invalidAuthenticationHeader: {
    message: () => Promise.reject(unauthorized("missing Authorization: Bearer <ADMIN_TOKEN>")),
  },
  invalidToken: { message: () => Promise.reject(unauthorized("wrong admin token")) },
});

const requireLedgerBound: MiddlewareHandler<AppEnv> = async (c, next) => {
  requireLedger(c.env);
  await next();
};

const countersQuery = z.object({ since: isoTime, until: z.optional(isoTime) });

/** Mounted at `/admin`: bearer `ADMIN_TOKEN`, checked before anything else runs. */
export const adminRoutes = new Hono<AppEnv>()
  .use("*", requireAdminSettings, requireBearer, requireLedgerBound)
  .get("/dead-letters", deadLetterQuery("query"), async (c) => {
    const page = await listPage(requireLedger(c.env), c.req.valid("query"));
    return c.json({ ok: true, ...page });
  })
  .post("/dead-letters/redrive", deadLetterQuery("query"), async (c) => {
    // Re-drives one page at a time, so a huge backlog cannot exhaust one request's limits.
    const db = requireLedger(c.env);
    const page = await listPage(db, c.req.valid("query"));
    const redriven = await redriveListed(c.env, db, page.letters, redriveToMailboxes);
    return c.json({ ok: true, redriven, cursor: page.cursor });
  })
  .get("/dead-letters/:id", async (c) =>
    c.json({ ok: true, letter: await requireDeadLetter(requireLedger(c.env), c.req.param("id")) }),
  )
  .delete("/dead-letters/:id", async (c) => {
    const db = requireLedger(c.env);
    const letter = await requireDeadLetter(db, c.req.param("id"));
    await discardDeadLetter(db, letter);
    return c.json({ ok: true, deleted: letter.id });
  })
  .post("/dead-letters/:id/redrive", async (c) => {
    const letter = await requireDeadLetter(requireLedger(c.env), c.req.param("id"));
    await redriveDeadLetter(c.env, letter, redriveToMailboxes);
    return c.json({ ok: true, redriven: letter.id });
  })
  .get("/counters", async (c) => {
    const { since, until } = parseQuery(countersQuery, c.req.query());
    const counters = await readCounters(requireLedger(c.env), {
      since: new Date(since),
      until: until === undefined ? undefined : new Date(until),
    });
    return c.json({ ok: true, counters });
  });
