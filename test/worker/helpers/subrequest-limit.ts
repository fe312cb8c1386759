/**
 * An env double that enforces a Workers plan's subrequest limits on one
 * invocation, as production does and Miniflare does not: every D1 query,
 * Durable Object call and queue send counts towards the plan's subrequests
 * to Cloudflare services, D1 queries also towards D1's own per-invocation
 * limit. The MAILBOX double counts and records each mailbox's `accept`
 * without running the objects (a limits test, not a delivery test).
 */
import type { Letter } from "../../../src/outbound/mailbox.ts";
import type { Env } from "../../../src/shared/env.ts";
import { queryLimitedD1 } from "./d1-query-limit.ts";

/** Cloudflare's limits per invocation (developers.cloudflare.com/workers/platform/limits, D1's limits). */
export const PLANS = {
  free: { name: "Workers Free", services: 1_000, d1: 50 },
  paid: { name: "Workers Paid", services: 10_000, d1: 1_000 },
} as const;

export function subrequestLimitedEnv(env: Env, plan: (typeof PLANS)[keyof typeof PLANS]) {
  const d1 = queryLimitedD1(env.LEDGER as D1Database, plan.d1);
  let calls = 0;
  const count = () => calls + d1.count();
  const tick = () => {
    calls++;
    if (count() > plan.services) throw new Error(`Too many subrequests: ${count()} on ${plan.name}`);
  };
  const accepted: Letter[] = [];
  const real = env.MAILBOX as NonNullable<Env["MAILBOX"]>;
  const mailbox = {
    idFromName: (name: string) => real.idFromName(name),
    get: () => ({
      accept: async (letters: Letter[]) => {
        tick();
        accepted.push(...letters);
        return { accepted: letters.length, skipped: 0 };
      },
    }),
  };
  const limited: Env = { ...env, LEDGER: d1.db, MAILBOX: mailbox as unknown as NonNullable<Env["MAILBOX"]> };
  return { env: limited, count, accepted };
}
