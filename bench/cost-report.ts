/**
 * What the cost points and the hot-user point are judged against, and how
 * they are written: their goals, their table, and their own section of
 * bench/README.md (between the cost markers).
 */
import { COST_POINT_LABELS, type Cost, type CostPoint, type CostPointName } from "./cost.ts";
import { largestComponents, monthlyCost, PRICES_READ } from "./lib/cost.ts";
import { type Goal, writeGoalSection } from "./lib/goals.ts";
import type { Cell } from "./lib/table.ts";

/** The goal: dollars per million outbound events at a billion a month. */
export const COST_GOAL_PER_MILLION = 3;
export const COST_GOAL_EVENTS_PER_MONTH = 1e9;
/** The hot user, strict order: calls per Vero round trip. */
export const HOT_USER_GOAL = 0.8;

const fmt = (value: number, digits = 2) => value.toLocaleString("en-US", { maximumFractionDigits: digits });
const dollars = (value: number) => `$${value.toFixed(2)}`;

const integrity = (p: CostPoint) =>
  `${p.check.delivered}/${p.check.expected} delivered${p.complete ? "" : " (cut at the timeout)"}, ${p.check.duplicates} twice, ${p.check.outOfOrder} out of order`;

const perDelivered = (p: CostPoint, value: number) => value / Math.max(1, p.check.delivered);

/** The counts behind a cost row, per delivered event. */
export function countsOf(p: CostPoint): string {
  const e = p.perEvent;
  return `${fmt(e.doRowsWritten)} DO rows written (${fmt(perDelivered(p, p.tally.rowsWritten))} by the mailbox), ${fmt(e.doRowsRead, 1)} read, ${fmt(e.doRequests)} DO requests, ${fmt(e.queueOperations)} queue operations, ${fmt(perDelivered(p, p.tally.d1Statements), 3)} D1 statements, ${fmt(perDelivered(p, p.tally.logLines))} log lines per event`;
}

export function costGoals(cost: Cost | { error: string }): Goal[] {
  const find = (name: CostPointName) => ("error" in cost ? undefined : cost.points.find((p) => p.name === name));
  const missing = (name: CostPointName) =>
    "error" in cost ? cost.error : `no ${COST_POINT_LABELS[name].split(":")[0]} point in this run`;
  const goals: Goal[] = [];
  const target = `≤ $${COST_GOAL_PER_MILLION}`;
  for (const name of ["sparse", "burst", "retry", "sparseQueued", "burstQueued", "retryQueued"] as const) {
    const goal = `$ per million outbound events at 1 billion a month, ${COST_POINT_LABELS[name]}`;
    const point = find(name);
    if (!point || point.check.delivered === 0) {
      goals.push({ goal, target, measured: "not measured", met: null, note: point ? integrity(point) : missing(name) });
      continue;
    }
    const month = monthlyCost(point.perEvent, COST_GOAL_EVENTS_PER_MONTH);
    goals.push({
      goal,
      target,
      measured: `${dollars(month.perMillionEvents)} (${countsOf(point)})`,
      met: month.perMillionEvents <= COST_GOAL_PER_MILLION,
      note: `most: ${largestComponents(month).join("; ")}; ${integrity(point)}; prices read ${PRICES_READ}`,
    });
  }
  const hot = find("hot");
  const concurrent = find("hotConcurrent");
  const goal =
    "hot user: 1 user x 200 tracks in requests of 15, Vero answering after 150 ms, strict order, vs one call per round trip";
  const beside = concurrent
    ? `with VERO_TRACK_CONCURRENCY=4 (no goal): ${fmt(concurrent.callsPerRoundTrip, 3)} (${fmt(concurrent.eventsPerSecond, 1)} events/s, ${concurrent.maxInFlight} calls in flight; ${integrity(concurrent)}, which the setting allows)`
    : "VERO_TRACK_CONCURRENCY=4 not measured in this run";
  goals.push(
    !hot || hot.check.delivered === 0
      ? {
          goal,
          target: `≥ ${HOT_USER_GOAL}`,
          measured: "not measured",
          met: null,
          note: hot ? integrity(hot) : missing("hot"),
        }
      : {
          goal,
          target: `≥ ${HOT_USER_GOAL}`,
          measured: `${fmt(hot.callsPerRoundTrip, 3)} (${fmt(hot.eventsPerSecond, 1)} of ${fmt(1000 / hot.veroDelayMs, 1)} events/s)`,
          met: hot.callsPerRoundTrip >= HOT_USER_GOAL && hot.check.outOfOrder === 0 && hot.check.duplicates === 0,
          note: `${integrity(hot)}; ${beside}`,
        },
  );
  return goals;
}

export function costTable(cost: Cost): { title: string; header: string[]; rows: Cell[][] } {
  return {
    title: `Cost per delivered event, counted from the Worker's log lines (Vero stand-in answering after ${cost.veroDelayMs} ms; priced at the list prices read ${PRICES_READ})`,
    header: [
      "point",
      "delivered",
      "twice",
      "out of order",
      "events/s",
      "per round trip, per user",
      "DO rows written (mailbox)",
      "DO rows read",
      "DO requests",
      "queue operations",
      "D1 statements",
      "log lines",
      "Workers requests",
      "$/M at 10 M a month",
      "$/M at 1 B a month",
    ],
    rows: cost.points.map((p): Cell[] => [
      COST_POINT_LABELS[p.name],
      p.complete ? `${p.check.delivered}/${p.check.expected}` : `${p.check.delivered}/${p.check.expected} (cut)`,
      p.check.duplicates,
      p.check.outOfOrder,
      p.eventsPerSecond,
      fmt(p.callsPerRoundTrip, 3),
      `${fmt(p.perEvent.doRowsWritten)} (${fmt(perDelivered(p, p.tally.rowsWritten))})`,
      fmt(p.perEvent.doRowsRead, 1),
      fmt(p.perEvent.doRequests),
      fmt(p.perEvent.queueOperations),
      fmt(perDelivered(p, p.tally.d1Statements), 3),
      fmt(perDelivered(p, p.tally.logLines)),
      fmt(p.perEvent.workersRequests),
      dollars(monthlyCost(p.perEvent, 1e7).perMillionEvents),
      dollars(monthlyCost(p.perEvent, 1e9).perMillionEvents),
    ]),
  };
}

/** Rewrites the cost section of `readmePath` into `target` (the same file, or a smoke run's copy). */
export const writeCostSection = (readmePath: string, target: string, cost: Cost, header: string): Promise<void> =>
  writeGoalSection(readmePath, target, "cost", header, costGoals(cost), costTable(cost));
