/**
 * The outbound drain point: how fast the bridge, under `wrangler dev` with
 * `wrangler.toml` as it is, carries a backlog of many users' events to a Vero
 * that answers every call after a realistic round trip, and whether each
 * user's events arrive once and in order. Each point gets a bridge of its own
 * (fresh queues and ledger) and a Vero tenant of its own.
 *
 * Two local costs production does not have share workerd's one thread with
 * the mailboxes: every Durable Object's SQLite commit is an fsync made on
 * that thread, so a slow disk stalls all mailboxes at once (on Cloudflare
 * each object commits on its own), and Miniflare's stand-in for Workers
 * Logs streams every invocation's trace to a collector Worker and a SQLite
 * store on it too. So the points run on a lean local runtime (state on
 * tmpfs where the machine has one, no local trace store), and the
 * `defaultRuntime` points measure the same load on `wrangler dev`'s
 * defaults beside them, as the reference.
 */

import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type RunningBridge, startBridge } from "../dev/bridge.ts";
import { DEV_SECRETS, deployedBindings } from "../dev/dev-settings.ts";
import { StandInClient } from "../dev/stand-ins/client.ts";
import { startSegmentStandIn } from "../dev/stand-ins/segment.ts";
import { startVeroStandIn } from "../dev/stand-ins/vero.ts";
import { awaitEvents, type DeliveryCheck } from "../dev/stand-ins/vero-events.ts";
import { round } from "./lib/stats.ts";
import { sendUserEvents, userIds } from "./lib/user-events.ts";
import { deliveryWork } from "./lib/worker-log.ts";

/**
 * How long after the last delivery the run keeps reading the Worker's log:
 * a mailbox reports its counts at most 60 s after its delivery
 * (COUNTS_REPORT_SECONDS' default, which the bench keeps), its shard
 * writes them to D1 5 s after (FLUSH_AFTER_MS in
 * src/delivery/counter-shard.ts), plus a margin.
 */
export const COUNTS_SETTLE_MS = 68_000;

/**
 * Waits for every user's `perUser` events at the Vero stand-in (its own timestamps give the figures, not the
 * polling), then for the counts' reports and D1 writes that follow the last delivery, so that the Worker's
 * log holds them all.
 */
export async function awaitDrained(
  veroClient: StandInClient,
  veroToken: string,
  expected: { users: string[]; perUser: number },
  firstSend: number,
  timeoutMs: number,
) {
  const { calls, check, complete } = await awaitEvents(veroClient, veroToken, expected, {
    timeoutMs: timeoutMs - (Date.now() - firstSend),
  });
  const inFlight = await veroClient.inFlight(veroToken);
  const delivering = calls.filter((call) => call.status === 200 && call.path.endsWith("/events/track"));
  const lastCall = delivering.length > 0 ? Math.max(...delivering.map((call) => call.at)) : Date.now();
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastCall + COUNTS_SETTLE_MS - Date.now())));
  return { calls, check, complete, inFlight, drainMs: Math.max(1, lastCall - firstSend) };
}

/** Linux's shared-memory file system, where the machine has it. */
const TMPFS = "/dev/shm";

function tmpfsPresent(): boolean {
  try {
    return statSync(TMPFS).isDirectory();
  } catch {
    return false;
  }
}

/** What a point's `wrangler dev` runs on: lean (see above), or `wrangler dev`'s defaults. */
export type LocalRuntime = "lean" | "defaults";

export function runtimeOptions(runtime: LocalRuntime): { stateParent?: string; env?: Record<string, string> } {
  if (runtime === "defaults") return {};
  return { stateParent: tmpfsPresent() ? TMPFS : undefined, env: { X_LOCAL_OBSERVABILITY: "false" } };
}

/** The runtime in words, for the tables. */
export const describeRuntime = (runtime: LocalRuntime): string =>
  runtime === "defaults" ? "wrangler dev's defaults" : `state on ${tmpfsPresent() ? "tmpfs" : "disk"}, no local traces`;

export interface DrainOptions {
  users: number[];
  /** User counts measured once more on `wrangler dev`'s defaults, the reference for the lean figures. */
  defaultRuntime: number[];
  /** User counts measured once more with the Vero queue bound (the operator's opt-in), on both runtimes. */
  queued: number[];
  /** User counts at which the reference (REFERENCE_COMMIT's queue consumer) runs, on `wrangler dev`'s defaults. */
  reference: number[];
  eventsPerUser: number;
  /** How long the Vero stand-in holds every answer back: the round trip to Vero's API. */
  veroDelayMs: number;
  /** Settings the bridge runs with beside the defaults (e.g. VERO_TRACK_CONCURRENCY for the hot-user point). */
  vars?: Record<string, string>;
  /** A point not drained by then is cut, and its figures are over what arrived. */
  timeoutMs: number;
  log: (line: string) => void;
}

/**
 * Outbound without the Vero queue (wrangler.toml as shipped: the routes hand
 * events to the mailboxes), with it (VERO_QUEUE bound, the operator's
 * opt-in), or the reference: the Vero queue consumer before the mailboxes
 * (main REFERENCE_COMMIT), run side by side.
 */
export type OutboundMode = "queue" | "direct" | "reference";

/** The queue consumer the mailboxes replaced, which issue 25's drain goal is measured against. */
export const REFERENCE_COMMIT = "9212176";

export interface DrainPoint {
  users: number;
  runtime: LocalRuntime;
  mode: OutboundMode;
  eventsPerUser: number;
  veroDelayMs: number;
  /** `/v1/batch` requests sent, one round after another. */
  requests: number;
  /** First send to the last acknowledgement. */
  sendMs: number;
  /** First send to the last Vero call that delivered an event. */
  drainMs: number;
  /** Events Vero accepted over drainMs. */
  eventsPerSecond: number;
  /** users / Vero round trip: each user's events go one at a time, so no bridge can drain faster. */
  serialLimit: number;
  ratioToLimit: number;
  /** The most Vero calls the stand-in held open at once. */
  maxInFlight: number;
  /** Every call the Vero stand-in received. */
  veroCalls: number;
  check: DeliveryCheck;
  /** Whether every event arrived before the timeout. */
  complete: boolean;
  /** Summed over the Worker's log lines that report them (see bench/lib/worker-log.ts). */
  d1Statements: number;
  doRequests: number;
  /** Log lines that reported D1 statements, and Durable Object requests. */
  d1Lines: number;
  doLines: number;
  d1PerEvent: number;
  /** Alarm invocations included. */
  doPerEvent: number;
  /** Mailbox storage rows per delivered event (the runtime's cursor counters, from the log lines). */
  rowsWrittenPerEvent: number;
  rowsReadPerEvent: number;
}

export interface Drain {
  options: Omit<DrainOptions, "log">;
  points: DrainPoint[];
}

export async function measureDrain(options: DrainOptions): Promise<Drain> {
  const segment = await startSegmentStandIn();
  const vero = await startVeroStandIn();
  const segmentClient = new StandInClient(segment.url);
  const veroClient = new StandInClient(vero.url);
  const points: DrainPoint[] = [];
  const plan: { users: number; runtime: LocalRuntime; mode: OutboundMode }[] = [
    ...options.users.map((users) => ({ users, runtime: "lean" as const, mode: "direct" as const })),
    ...options.defaultRuntime.map((users) => ({ users, runtime: "defaults" as const, mode: "direct" as const })),
    ...options.queued.flatMap((users) =>
      (["lean", "defaults"] as const).map((runtime) => ({ users, runtime, mode: "queue" as const })),
    ),
    ...options.reference.map((users) => ({ users, runtime: "defaults" as const, mode: "reference" as const })),
  ];
  try {
    for (const { users, runtime, mode } of plan) {
      const run = `drain-${users}-${Date.now().toString(36)}`;
      const [writeKey, veroToken] = await Promise.all([segmentClient.tenant(), veroClient.tenant()]);
      await veroClient.fail(veroToken, { delayMs: options.veroDelayMs });
      const work = { d1Statements: 0, doRequests: 0, d1Lines: 0, doLines: 0, rowsWritten: 0, rowsRead: 0 };
      let bridge: RunningBridge | undefined;
      try {
        // Production's LOG_SAMPLE_RATE, as the reference runs with its own: the lines a speed point writes cost it
        // time on workerd's one thread. What the D1 goal counts is always written (the shards' flushes, failures);
        // the cost points count every line.
        bridge = await startPointBridge({
          origins: { segment: segment.url, vero: vero.url },
          tenants: { writeKey, veroToken },
          vars: options.vars,
          mode,
          runtime,
          onLine: (line) => {
            const reported = deliveryWork(line);
            if (reported?.d1Statements !== undefined) {
              work.d1Statements += reported.d1Statements;
              work.d1Lines++;
            }
            if (reported?.doRequests !== undefined) {
              work.doRequests += reported.doRequests;
              work.doLines++;
            }
            work.rowsWritten += reported?.doRowsWritten ?? 0;
            work.rowsRead += reported?.doRowsRead ?? 0;
          },
        });
        const ids = userIds(run, users);
        const expected = users * options.eventsPerUser;
        const firstSend = Date.now();
        const requests = await sendUserEvents(bridge.url, DEV_SECRETS.SEGMENT_SHARED_SECRET, {
          users: ids,
          eventsPerUser: options.eventsPerUser,
          run,
        });
        const sendMs = Date.now() - firstSend;
        options.log(
          `  drain ${users} users (${describeRuntime(runtime)}, ${describeMode(mode)}): ${expected} events sent in ${requests} requests, ${sendMs} ms`,
        );

        // The quiet 3 s of the polling is longer than the queue consumer's batch timeout.
        const { calls, check, complete, inFlight, drainMs } = await awaitDrained(
          veroClient,
          veroToken,
          { users: ids, perUser: options.eventsPerUser },
          firstSend,
          options.timeoutMs,
        );
        await bridge.stop();
        bridge = undefined;
        const eventsPerSecond = check.delivered / (drainMs / 1000);
        const serialLimit = users / (options.veroDelayMs / 1000);
        const point: DrainPoint = {
          users,
          runtime,
          mode,
          eventsPerUser: options.eventsPerUser,
          veroDelayMs: options.veroDelayMs,
          requests,
          sendMs,
          drainMs,
          eventsPerSecond: round(eventsPerSecond, 1),
          serialLimit: round(serialLimit, 1),
          ratioToLimit: round(eventsPerSecond / serialLimit, 3),
          maxInFlight: inFlight.max,
          veroCalls: calls.length,
          check,
          complete,
          ...work,
          d1PerEvent: round(work.d1Statements / Math.max(1, check.delivered), 3),
          doPerEvent: round(work.doRequests / Math.max(1, check.delivered), 3),
          rowsWrittenPerEvent: round(work.rowsWritten / Math.max(1, check.delivered), 2),
          rowsReadPerEvent: round(work.rowsRead / Math.max(1, check.delivered), 2),
        };
        points.push(point);
        options.log(`  drain ${describeDrainPoint(point)}`);
      } finally {
        await bridge?.stop();
      }
    }
  } finally {
    await Promise.all([segment.close(), vero.close()]);
  }
  const { log: _log, ...rest } = options;
  return { options: rest, points };
}

/**
 * A point's bridge under `wrangler dev`: production's settings pointed at
 * the stand-ins and the point's tenants, `vars` beside them, the mode's
 * configuration and the runtime; its output to `onLine`.
 */
export async function startPointBridge(point: {
  origins: { segment: string; vero: string };
  tenants: { writeKey: string; veroToken: string };
  vars?: Record<string, string>;
  mode: OutboundMode;
  runtime: LocalRuntime;
  onLine: (line: string) => void;
}): Promise<RunningBridge> {
  const { mode } = point;
  return startBridge({
    vars: {
      ...deployedBindings(point.origins.segment, point.origins.vero),
      SEGMENT_WRITE_KEY: point.tenants.writeKey,
      VERO_AUTH_TOKEN: point.tenants.veroToken,
      ...point.vars,
    },
    stdio: "pipe",
    ...(mode === "direct"
      ? {}
      : { config: await (mode === "queue" ? queuedConfig() : referenceConfig()), migrate: true }),
    ...runtimeOptions(point.runtime),
    onLine: point.onLine,
  });
}

/** The outbound mode in words, for the tables. */
export const describeMode = (mode: OutboundMode): string =>
  mode === "queue"
    ? "Vero queue (opt-in)"
    : mode === "direct"
      ? "no Vero queue (as shipped)"
      : `queue consumer of ${REFERENCE_COMMIT}`;

/**
 * The reference's wrangler.toml: REFERENCE_COMMIT's tree, exported once
 * beside the bench's output (`git archive`, so no worktree is registered),
 * its packages this project's (the same dependencies, less what came later).
 */
export async function referenceConfig(): Promise<string> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const dir = join(root, "bench", ".out", `reference-${REFERENCE_COMMIT}`);
  if (!existsSync(join(dir, "wrangler.toml"))) {
    await mkdir(dir, { recursive: true });
    const archive = spawnSync("git", ["-C", root, "archive", "--format=tar", REFERENCE_COMMIT], {
      maxBuffer: 256 * 1024 * 1024,
    });
    if (archive.status !== 0) throw new Error(`git archive ${REFERENCE_COMMIT}: ${archive.stderr}`);
    const untar = spawnSync("tar", ["-x", "-C", dir], { input: archive.stdout });
    if (untar.status !== 0) throw new Error(`tar: ${untar.stderr}`);
  }
  if (!existsSync(join(dir, "node_modules"))) await symlink(join(root, "node_modules"), join(dir, "node_modules"));
  return join(dir, "wrangler.toml");
}

/**
 * The project's wrangler.toml with the Vero queue's producer added, as
 * wrangler.toml's comment tells an operator to, written beside the bench's
 * output (its paths made relative to it): the outbound routes enqueue.
 */
export async function queuedConfig(): Promise<string> {
  const text = await readFile(new URL("../wrangler.toml", import.meta.url), "utf8");
  const segmentProducer = '[[queues.producers]]\nbinding = "SEGMENT_QUEUE"\nqueue = "vero-segment-bridge-segment"\n';
  const veroProducer = '[[queues.producers]]\nbinding = "VERO_QUEUE"\nqueue = "vero-segment-bridge-vero"\n';
  if (!text.includes(segmentProducer))
    throw new Error("wrangler.toml's SEGMENT_QUEUE producer is not as bench/drain.ts expects");
  if (text.includes(veroProducer))
    throw new Error("wrangler.toml binds VERO_QUEUE already; bench/drain.ts expects not");
  const out = new URL(".out/", import.meta.url);
  await mkdir(out, { recursive: true });
  const config = new URL("wrangler.queued.toml", out);
  await writeFile(
    config,
    text
      .replace(segmentProducer, `${segmentProducer}\n${veroProducer}`)
      .replace('main = "src/index.ts"', 'main = "../../src/index.ts"')
      .replaceAll('migrations_dir = "migrations"', 'migrations_dir = "../../migrations"'),
  );
  return fileURLToPath(config);
}

export function describeDrainPoint(p: DrainPoint): string {
  return `${p.users} users x ${p.eventsPerUser}, ${describeRuntime(p.runtime)}, ${describeMode(p.mode)}: ${p.eventsPerSecond} events/s (${p.ratioToLimit} of ${p.serialLimit}), ${p.maxInFlight} Vero calls in flight at most, ${p.check.delivered}/${p.check.expected} delivered${p.complete ? "" : " (CUT at the timeout)"}, ${p.check.duplicates} twice, ${p.check.outOfOrder} out of order for ${p.check.usersOutOfOrder} users, ${p.d1PerEvent} D1 statements, and in the lines written at production's sample (the cost points count them all) ${p.doPerEvent} DO requests, ${p.rowsWrittenPerEvent} mailbox rows written and ${p.rowsReadPerEvent} read per event`;
}
