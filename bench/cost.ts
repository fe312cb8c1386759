/**
 * The cost points and the hot-user point: each runs a bridge of its own under
 * `wrangler dev` (`wrangler.toml` as it is, on the lean local runtime of
 * bench/drain.ts) and a Vero tenant of its own answering after 150 ms, sends
 * its load, waits until Vero holds every event, then keeps reading the
 * Worker's log until the counts' reports and writes have come. What each
 * delivered event cost is summed from the Worker's own log lines
 * (bench/lib/cost.ts).
 */

import { readFile } from "node:fs/promises";
import type { RunningBridge } from "../dev/bridge.ts";
import { DEV_SECRETS } from "../dev/dev-settings.ts";
import { StandInClient } from "../dev/stand-ins/client.ts";
import { startSegmentStandIn } from "../dev/stand-ins/segment.ts";
import type { FailurePlan } from "../dev/stand-ins/types.ts";
import { startVeroStandIn } from "../dev/stand-ins/vero.ts";
import type { DeliveryCheck } from "../dev/stand-ins/vero-events.ts";
import { DEFAULT_LOG_SAMPLE_RATE } from "../src/shared/log.ts";
import { awaitDrained, startPointBridge } from "./drain.ts";
import { emptyTally, type Logging, tallyLine, type UnitsPerEvent, unitsPerEvent, type WorkTally } from "./lib/cost.ts";
import { round } from "./lib/stats.ts";
import { sendUserEvents, userIds } from "./lib/user-events.ts";

export type CostPointName =
  | "sparse"
  | "burst"
  | "retry"
  | "sparseQueued"
  | "burstQueued"
  | "retryQueued"
  | "hot"
  | "hotConcurrent";

export interface CostPointSpec {
  name: CostPointName;
  users: number;
  eventsPerUser: number;
  /** Pause between one round of events and the next. */
  gapMs: number;
  /** What the Vero stand-in does beside answering after the round trip. */
  failure?: Omit<FailurePlan, "delayMs">;
  vars?: Record<string, string>;
  /** With the Vero queue the operator may bind (wrangler.toml plus VERO_QUEUE): the routes enqueue. */
  queued?: true;
  /** Consecutive events of each user per request (default 1). */
  eventsPerRequest?: number;
}

/** The loads. */
export const COST_POINTS: Record<CostPointName, CostPointSpec> = {
  sparse: { name: "sparse", users: 1, eventsPerUser: 20, gapMs: 2_000 },
  burst: { name: "burst", users: 100, eventsPerUser: 8, gapMs: 0 },
  retry: { name: "retry", users: 1, eventsPerUser: 1, gapMs: 0, failure: { status: 500, times: 1 } },
  sparseQueued: { name: "sparseQueued", users: 1, eventsPerUser: 20, gapMs: 2_000, queued: true },
  burstQueued: { name: "burstQueued", users: 100, eventsPerUser: 8, gapMs: 0, queued: true },
  retryQueued: {
    name: "retryQueued",
    users: 1,
    eventsPerUser: 1,
    gapMs: 0,
    failure: { status: 500, times: 1 },
    queued: true,
  },
  // A hot user's events come in batches (analytics-node flushes 15): one event a request, each answered once
  // its call is made, would measure the sender's round trips, not the mailbox.
  hot: { name: "hot", users: 1, eventsPerUser: 200, gapMs: 0, eventsPerRequest: 15 },
  hotConcurrent: {
    name: "hotConcurrent",
    users: 1,
    eventsPerUser: 200,
    gapMs: 0,
    eventsPerRequest: 15,
    vars: { VERO_TRACK_CONCURRENCY: "4" },
  },
};

export const COST_POINT_LABELS: Record<CostPointName, string> = {
  sparse: "sparse: 1 user, 20 events 2 s apart",
  burst: "burst: 100 users x 8 events",
  retry: "retry: 1 event, its first call answered 500",
  sparseQueued: "sparse, with the Vero queue",
  burstQueued: "burst, with the Vero queue",
  retryQueued: "retry, with the Vero queue",
  hot: "hot user: 1 user x 200 tracks, 15 a request, strict order",
  hotConcurrent: "hot user: 1 user x 200 tracks, 15 a request, VERO_TRACK_CONCURRENCY=4",
};

export interface CostPoint {
  name: CostPointName;
  users: number;
  eventsPerUser: number;
  veroDelayMs: number;
  routeRequests: number;
  /** First send to the last Vero call that delivered an event. */
  drainMs: number;
  eventsPerSecond: number;
  /** Vero calls one user's strict order allows a second: 1 / round trip. */
  callsPerRoundTrip: number;
  veroCalls: number;
  maxInFlight: number;
  check: DeliveryCheck;
  complete: boolean;
  tally: WorkTally;
  perEvent: UnitsPerEvent;
}

export interface CostOptions {
  points: CostPointSpec[];
  veroDelayMs: number;
  timeoutMs: number;
  log: (line: string) => void;
}

export interface Cost {
  veroDelayMs: number;
  points: CostPoint[];
}

export async function measureCost(options: CostOptions): Promise<Cost> {
  const segment = await startSegmentStandIn();
  const vero = await startVeroStandIn();
  const segmentClient = new StandInClient(segment.url);
  const veroClient = new StandInClient(vero.url);
  const points: CostPoint[] = [];
  try {
    for (const spec of options.points) {
      const run = `cost-${spec.name}-${Date.now().toString(36)}`;
      const [writeKey, veroToken] = await Promise.all([segmentClient.tenant(), veroClient.tenant()]);
      await veroClient.fail(veroToken, { ...spec.failure, delayMs: options.veroDelayMs });
      const tally = emptyTally();
      let bridge: RunningBridge | undefined;
      try {
        bridge = await startPointBridge({
          origins: { segment: segment.url, vero: vero.url },
          tenants: { writeKey, veroToken },
          // Every line written, so that every unit of work is counted; their price counts production's sample.
          vars: { LOG_SAMPLE_RATE: "1", ...spec.vars },
          mode: spec.queued ? "queue" : "direct",
          runtime: "lean",
          onLine: (line) => tallyLine(tally, line),
        });
        const ids = userIds(run, spec.users);
        const firstSend = Date.now();
        const routeRequests = await sendUserEvents(bridge.url, DEV_SECRETS.SEGMENT_SHARED_SECRET, {
          users: ids,
          eventsPerUser: spec.eventsPerUser,
          run,
          gapMs: spec.gapMs,
          eventsPerRequest: spec.eventsPerRequest,
        });
        const { calls, check, complete, inFlight, drainMs } = await awaitDrained(
          veroClient,
          veroToken,
          { users: ids, perUser: spec.eventsPerUser },
          firstSend,
          options.timeoutMs,
        );
        await bridge.stop();
        bridge = undefined;
        const eventsPerSecond = check.delivered / (drainMs / 1000);
        const point: CostPoint = {
          name: spec.name,
          users: spec.users,
          eventsPerUser: spec.eventsPerUser,
          veroDelayMs: options.veroDelayMs,
          routeRequests,
          drainMs,
          eventsPerSecond: round(eventsPerSecond, 1),
          callsPerRoundTrip: round(eventsPerSecond / spec.users / (1000 / options.veroDelayMs), 3),
          veroCalls: calls.length,
          maxInFlight: inFlight.max,
          check,
          complete,
          tally,
          perEvent: unitsPerEvent(tally, {
            routeRequests,
            delivered: check.delivered,
            veroRoundTripMs: options.veroDelayMs,
            logging: await productionLogging(),
          }),
        };
        points.push(point);
        options.log(`  ${COST_POINT_LABELS[spec.name]}: ${describeCostPoint(point)}`);
      } finally {
        await bridge?.stop();
      }
    }
  } finally {
    await Promise.all([segment.close(), vero.close()]);
  }
  return { veroDelayMs: options.veroDelayMs, points };
}

/** How the deployed Worker logs: LOG_SAMPLE_RATE's default, and wrangler.toml's `invocation_logs`. */
async function productionLogging(): Promise<Logging> {
  const config = await readFile(new URL("../wrangler.toml", import.meta.url), "utf8");
  return {
    logSampleRate: DEFAULT_LOG_SAMPLE_RATE,
    invocationLogs: /^invocation_logs\s*=\s*true/m.test(config),
  };
}

export function describeCostPoint(p: CostPoint): string {
  const e = p.perEvent;
  const f = (value: number) => round(value, 2);
  return `${p.check.delivered}/${p.check.expected} delivered${p.complete ? "" : " (CUT at the timeout)"}, ${p.check.duplicates} twice, ${p.check.outOfOrder} out of order, ${p.veroCalls} Vero calls, ${p.eventsPerSecond} events/s (${p.callsPerRoundTrip} per round trip per user); per event: ${f(e.doRowsWritten)} DO rows written (${f(p.tally.rowsWritten / Math.max(1, p.check.delivered))} by the mailboxes), ${f(e.doRowsRead)} read, ${f(e.doRequests)} DO requests, ${f(e.queueOperations)} queue operations, ${f(p.tally.d1Statements / Math.max(1, p.check.delivered))} D1 statements, ${f(p.tally.logLines / Math.max(1, p.check.delivered))} log lines; lines (rows written) by message: ${Object.entries(
    p.tally.byMessage,
  )
    .map(([msg, { lines, rowsWritten }]) => `${msg} ${lines} (${rowsWritten})`)
    .join(", ")}`;
}
