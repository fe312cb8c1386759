import { Hono, type MiddlewareHandler } from "hono";
import * as z from "zod/mini";
import { type DeadLetter, deleteDeadLetter, getDeadLetter, listDeadLetters, sendBack } from "./dead-letters.ts";
import type { Env } from "./env.ts";
import { BridgeError, unauthorized } from "./errors.ts";
import { type AppEnv, methodNotAllowed, notConfigured } from "./http.ts";
import { log } from "./log.ts";
import { matchesAnySecret } from "./secrets.ts";
import { settingsFor } from "./settings.ts";
import "./zod.ts";

/** The admin routes need the token and the store; without either they say which is missing. */
const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  const state = settingsFor(c.env).admin;
  if (!state.ready) {
    throw notConfigured("admin", state);
  }
  const match = c.req.header("Authorization")?.match(/^Bearer\s+(\S+)\s*$/i);
  if (!match?.[1]) throw unauthorized("missing Authorization: Bearer <ADMIN_TOKEN>");
  if (!(await matchesAnySecret(match[1], state.settings.adminTokens))) throw unauthorized("wrong admin token");
  if (!c.env.DEAD_LETTERS) {
    throw new BridgeError(503, "not_configured", "the DEAD_LETTERS KV namespace is not bound (see wrangler.toml)");
  }
  await next();
};

function store(env: Env): KVNamespace {
  // requireAdmin has checked the binding; this narrows the type for the handlers.
  return env.DEAD_LETTERS as KVNamespace;
}

async function mustGet(env: Env, id: string): Promise<DeadLetter> {
  const letter = await getDeadLetter(store(env), id);
  if (!letter) throw new BridgeError(404, "not_found", `no dead letter ${id}`);
  return letter;
}

/** Sends a dead letter back to the queue it came from, then forgets it. */
async function redrive(env: Env, letter: DeadLetter): Promise<void> {
  // Sent before the delete: a crash in between leaves a duplicate to delete, never a loss.
  await sendBack(env, letter);
  await deleteDeadLetter(store(env), letter.id);
  log("info", "dead letter re-driven", { id: letter.id, source: letter.source });
}

const listQuery = z.object({
  cursor: z.optional(z.string()),
  limit: z.optional(z.pipe(z.coerce.number(), z.int().check(z.minimum(1), z.maximum(1000)))),
});

function parseListQuery(query: Record<string, string>) {
  const parsed = listQuery.safeParse(query);
  if (!parsed.success) throw new BridgeError(400, "bad_request", "limit must be a whole number from 1 to 1000");
  return parsed.data;
}

/** Mounted at `/admin`: bearer `ADMIN_TOKEN`, checked before anything else runs. */
export const adminRoutes = new Hono<AppEnv>()
  .use("*", requireAdmin)
  .get("/dead-letters", async (c) => {
    const page = await listDeadLetters(store(c.env), parseListQuery(c.req.query()));
    return c.json({ ok: true, ...page });
  })
  .post("/dead-letters/redrive", async (c) => {
    // Re-drives one page at a time, so a huge backlog cannot exhaust one request's limits.
    const page = await listDeadLetters(store(c.env), parseListQuery(c.req.query()));
    const redriven: string[] = [];
    for (const summary of page.letters) {
      const letter = await getDeadLetter(store(c.env), summary.id);
      if (!letter) continue; // deleted meanwhile by someone else
      await redrive(c.env, letter);
      redriven.push(letter.id);
    }
    return c.json({ ok: true, redriven, cursor: page.cursor });
  })
  .all("/dead-letters/redrive", methodNotAllowed(["POST"]))
  .all("/dead-letters", methodNotAllowed(["GET"]))
  .get("/dead-letters/:id", async (c) => c.json({ ok: true, letter: await mustGet(c.env, c.req.param("id")) }))
  .delete("/dead-letters/:id", async (c) => {
    const letter = await mustGet(c.env, c.req.param("id"));
    await deleteDeadLetter(store(c.env), letter.id);
    log("info", "dead letter deleted", { id: letter.id, source: letter.source });
    return c.json({ ok: true, deleted: letter.id });
  })
  .all("/dead-letters/:id", methodNotAllowed(["GET", "DELETE"]))
  .post("/dead-letters/:id/redrive", async (c) => {
    const letter = await mustGet(c.env, c.req.param("id"));
    await redrive(c.env, letter);
    return c.json({ ok: true, redriven: letter.id });
  })
  .all("/dead-letters/:id/redrive", methodNotAllowed(["POST"]));
