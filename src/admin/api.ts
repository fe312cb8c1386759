import { Hono, type MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import * as z from "zod/mini";
import {
  discardDeadLetter,
  redriveDeadLetter,
  redriveListed,
  redrivePageSize,
  requireDeadLetter,
  requireLedger,
} from "../delivery/dead-letters.ts";
import { LATENCY_BOUNDS_MS, summarise } from "../delivery/latency.ts";
import { DEFAULT_PAGE_SIZE, readCounters, readLatency } from "../delivery/ledger.ts";
import { redriveToMailboxes } from "../outbound/mailboxes.ts";
import type { Env } from "../shared/env.ts";
import { BridgeError, badRequest, unauthorized } from "../shared/errors.ts";
import { type AppContext, type AppEnv, limitBody, notConfigured } from "../shared/http.ts";
import { matchesAnySecret } from "../shared/secrets.ts";
import { settingsFor } from "../shared/settings.ts";
import { deadLetterQuery, isoTimeSchema, listPage, parseQuery } from "./dead-letter-query.ts";
import { DIRECTIONS } from "./flow.tsx";
import { countFailure } from "./limits.ts";
import { testSegmentEvents, testVeroWebhook } from "./tester.ts";
import "../shared/zod.ts";

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
    message: () => Promise.reject(unauthorized("missing Authorization: Bearer <ADMIN_TOKEN>", ["Bearer"])),
  },
  invalidAuthenticationHeader: {
    message: () => Promise.reject(unauthorized("missing Authorization: Bearer <ADMIN_TOKEN>", ["Bearer"])),
  },
  invalidToken: {
    // A wrong token counts against the caller's limit; past it the answer is a 429 instead.
    message: async (c) => {
      if (!(await countFailure(c, "admin-api")))
        throw new BridgeError(429, "too_many_attempts", "too many wrong admin tokens from here; wait a minute", {
          headers: { "Retry-After": "60" },
        });
      throw unauthorized("wrong admin token", ["Bearer"]);
    },
  },
});

const requireLedgerBound: MiddlewareHandler<AppEnv> = async (c, next) => {
  requireLedger(c.env);
  await next();
};

const countersQuery = z.object({ since: isoTimeSchema, until: z.optional(isoTimeSchema) });
const latencyQuery = z.object({ since: z.optional(isoTimeSchema), until: z.optional(isoTimeSchema) });
const DAY_MS = 86_400_000;

const testerBody = z.object({
  payload: z.optional(z.unknown()),
  deadLetter: z.optional(z.string().check(z.minLength(1))),
  send: z._default(z.boolean(), false),
});

/**
 * The event tester for scripts: `{ payload }` (what Segment or Vero would
 * send) or `{ deadLetter: id }`, and `send: true` to deliver it for real.
 */
async function runTester(c: AppContext, direction: "outbound" | "inbound") {
  let json: unknown;
  try {
    json = await c.req.json();
  } catch {
    throw badRequest("the body is not valid JSON: send { payload } or { deadLetter }, and send: true to deliver");
  }
  const input = parseQuery(testerBody, (json ?? {}) as Record<string, unknown>);
  if ((input.payload === undefined) === (input.deadLetter === undefined))
    throw badRequest("send exactly one of payload (an event or webhook) and deadLetter (a dead letter's id)");
  let payload = input.payload;
  if (input.deadLetter !== undefined) {
    const letter = await requireDeadLetter(requireLedger(c.env), input.deadLetter);
    // A letter from the Vero queue holds Segment events mapped for Vero: the outbound tester's.
    const letterDirection = letter.source === "vero" ? "outbound" : "inbound";
    if (letterDirection !== direction)
      throw badRequest(
        `dead letter ${letter.id} came from the ${letter.source} queue: test it with /admin/tester/${letter.source === "vero" ? "segment" : "vero"}`,
      );
    payload = letter.body;
  }
  const result =
    direction === "outbound"
      ? await testSegmentEvents(c.env, payload, input.send)
      : await testVeroWebhook(c.env, payload, input.send);
  return c.json({ ok: true as const, ...result });
}

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
    const query = c.req.valid("query");
    // A smaller page, not a cut-short one: its cursor then still leads to the letters after it.
    const limit = redrivePageSize(c.env, query.limit ?? DEFAULT_PAGE_SIZE);
    const page = await listPage(db, { ...query, limit });
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
  .post("/tester/segment", limitBody, (c) => runTester(c, "outbound"))
  .post("/tester/vero", limitBody, (c) => runTester(c, "inbound"))
  .get("/counters", async (c) => {
    const { since, until } = parseQuery(countersQuery, c.req.query());
    const counters = await readCounters(requireLedger(c.env), {
      since: new Date(since),
      until: until === undefined ? undefined : new Date(until),
    });
    return c.json({ ok: true, counters });
  })
  .get("/latency", async (c) => {
    const query = parseQuery(latencyQuery, c.req.query());
    const until = query.until === undefined ? new Date() : new Date(query.until);
    const since = query.since === undefined ? new Date(until.getTime() - DAY_MS) : new Date(query.since);
    const histograms = await readLatency(requireLedger(c.env), { since, until });
    const latency = Object.fromEntries(
      DIRECTIONS.map((direction) => {
        const histogram = histograms[direction];
        const bins = LATENCY_BOUNDS_MS.flatMap((geMs) => {
          const count = histogram.get(geMs);
          return count ? [{ geMs, count }] : [];
        });
        return [direction, { ...summarise(histogram), bins }];
      }),
    );
    return c.json({ ok: true, since: since.toISOString(), until: until.toISOString(), latency });
  });
