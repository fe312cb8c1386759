/**
 * What the console reads and changes, through the ledger's functions only.
 * Every function takes the bound ledger: the routes check the binding once.
 */

import { discardDeadLetter, redriveDeadLetter, redriveListed, requireDeadLetter } from "../delivery/dead-letters.ts";
import { summarise } from "../delivery/latency.ts";
import {
  type CounterRow,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterSummary,
  listDeadLetters,
  readCounters,
  readLatency,
} from "../delivery/ledger.ts";
import { redriveToMailboxes } from "../outbound/mailboxes.ts";
import type { Env } from "../shared/env.ts";
import { listPage } from "./dead-letter-query.ts";
import { RANGES } from "./flow.tsx";
import type { LatencyByRange } from "./latency.tsx";

export type { CounterRow, DeadLetter, DeadLetterFilter, DeadLetterSummary };

const HOUR_MS = 3_600_000;
export const WEEK_HOURS = 7 * 24;

/** The start of the hour `now` falls in. */
export function hourStart(now: Date): Date {
  return new Date(Math.floor(now.getTime() / HOUR_MS) * HOUR_MS);
}

/** The counters of the last 7 days, this hour included. */
export async function weekOfCounters(db: D1Database, now: Date): Promise<CounterRow[]> {
  const until = new Date(hourStart(now).getTime() + HOUR_MS);
  return readCounters(db, { since: new Date(until.getTime() - WEEK_HOURS * HOUR_MS), until });
}

/** Each direction's latency percentiles over the flow's ranges (24 hours, 7 days) up to `now`. */
export async function latencyByRange(db: D1Database, now: Date): Promise<LatencyByRange> {
  const [day, week] = await Promise.all(
    RANGES.map((range) => readLatency(db, { since: new Date(now.getTime() - range.hours * HOUR_MS) })),
  );
  const summaries = (histograms: Awaited<ReturnType<typeof readLatency>> | undefined) => ({
    inbound: summarise(histograms?.inbound ?? new Map()),
    outbound: summarise(histograms?.outbound ?? new Map()),
  });
  return { day: summaries(day), week: summaries(week) };
}

export function deadLetters(db: D1Database, filter: DeadLetterFilter) {
  return listPage(db, filter);
}

export async function redriveOne(env: Env, db: D1Database, id: string): Promise<void> {
  await redriveDeadLetter(env, await requireDeadLetter(db, id), redriveToMailboxes);
}

/** One page of at most 100 letters a request, so a huge backlog cannot exhaust one request's limits. */
export const REDRIVE_PAGE = 100;

export async function redriveMatching(
  env: Env,
  db: D1Database,
  filter: Omit<DeadLetterFilter, "cursor" | "limit">,
): Promise<{ redriven: number; remaining: number }> {
  const page = await listDeadLetters(db, { ...filter, limit: REDRIVE_PAGE });
  const redriven = (await redriveListed(env, db, page.letters, redriveToMailboxes)).length;
  return { redriven, remaining: Math.max(0, page.total - redriven) };
}

export async function deleteOne(db: D1Database, id: string): Promise<void> {
  await discardDeadLetter(db, await requireDeadLetter(db, id));
}
