/**
 * End to end under `wrangler dev`: the bridge (at the default log sample
 * rate, at rate 1, and without its ledger when one is bound) and the naive
 * forwarders run side by side against the same in-process stand-ins, each
 * with its own tenants, and are measured alternately in the same run, so
 * their ratios survive this machine's noise.
 */
import { createHmac } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { type RunningBridge, startBridge } from "../dev/bridge.ts";
import { DEV_SECRETS, devBindings } from "../dev/dev-settings.ts";
import { type RecordedCall, StandInClient, segmentMessages } from "../dev/stand-ins/client.ts";
import { startSegmentStandIn } from "../dev/stand-ins/segment.ts";
import { startVeroStandIn } from "../dev/stand-ins/vero.ts";
import { segmentFixtures, veroFixtures } from "./fixtures.ts";
import { type CpuShare, cpuMeter } from "./lib/cpu.ts";
import { type BenchRequest, type LoadResult, runLoad } from "./lib/load.ts";
import { functionOf } from "./lib/profile.ts";
import { round } from "./lib/stats.ts";
import { hasTables, relocated, withoutTables } from "./lib/worker-config.ts";
import { type FieldStats, fieldStats, logLine } from "./lib/worker-log.ts";
import { profileWorker, type WorkerProfile } from "./lib/worker-profile.ts";

const ROOT = join(import.meta.dirname, "..");
const BRIDGE_CONFIG = join(ROOT, "wrangler.toml");
const NAIVE_CONFIG = join(ROOT, "dev", "naive-forwarder", "wrangler.toml");
const OUT = join(import.meta.dirname, ".out");
/** Distinct bodies per fixture: every webhook gets its own user and time, so its own messageId. */
const VARIANTS = 400;

export type Direction = "inbound" | "outbound";
export type WorkerName = "bridge" | "bridgeFullLog" | "bridgeInline" | "bridgeInlineNoLedger" | "naive";

export const WORKER_LABELS: Record<WorkerName, string> = {
  bridge: "bridge",
  bridgeFullLog: "bridge, LOG_SAMPLE_RATE=1",
  bridgeInline: "bridge, inline",
  bridgeInlineNoLedger: "bridge, inline, no ledger",
  naive: "naive forwarder",
};

/**
 * The bridge's functions that validate and map a payload: their inclusive
 * time in the isolate profile is what mapping costs per event. esbuild may
 * suffix a name with a digit when two modules share it.
 */
export const MAPPING_FUNCTIONS = [
  "mapVeroWebhook",
  "parseVeroWebhook",
  "veroMessageId",
  "parseSegmentEvent",
  "mapSegmentEvent",
] as const;
const mappingFrame = new RegExp(`^(${MAPPING_FUNCTIONS.join("|")})\\d*$`);

/** A frame that writes log lines: the logger (however a change names it) or the console underneath. */
export const isLogFrame = (functionName: string) => /^(console\b.*|log\d*|log[A-Z_]\w*|\w+Log\d*)$/.test(functionName);

/** How many self-time frames the report shows, and judges `log` against. */
export const TOP_FRAMES = 5;

export interface Sweep {
  worker: WorkerName;
  direction: Direction;
  concurrencies: number[];
}

export interface PointResult {
  worker: WorkerName;
  direction: Direction;
  concurrency: number;
  eventsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  firstFailure?: string;
  /** Upstream calls the stand-in recorded for this point, over events acknowledged. */
  upstreamRequests: number;
  upstreamRequestsPerEvent: number;
  /** Whether every acknowledged event reached the stand-in before the settle timeout. */
  delivered: boolean;
  cpu: CpuShare;
}

/** Inbound acknowledgement latency while the Segment stand-in answers after `segmentDelayMs`. */
export interface LatencyPoint extends PointResult {
  segmentDelayMs: number;
}

/** A point run again under the isolate's CPU profiler: how busy the Worker was, and on what. */
export interface ProfiledPoint {
  worker: WorkerName;
  direction: Direction;
  concurrency: number;
  /** Under the profiler, so below the unprofiled figure. */
  eventsPerSecond: number;
  isolateBusyShare: number;
  isolateCpuMsPerEvent: number;
  hotspots: WorkerProfile["hotspots"];
  /** Inclusive time of MAPPING_FUNCTIONS over the isolate's busy time; null for the naive forwarder or when no frame matched. */
  mappingShare: number | null;
  mappingCpuMsPerEvent: number | null;
  /** Log-writing frames among the TOP_FRAMES by self time. */
  logFramesInTop: string[];
}

export interface BurstResult {
  worker: "bridge" | "naive";
  events: number;
  concurrency: number;
  ok: number;
  failed: number;
  segmentRequests: number;
  segmentMessages: number;
  segmentRequestsPerEvent: number;
  /** Last acknowledgement to last message at the stand-in (0 when delivery is inline). */
  drainMs: number;
  /** Events over first send to last delivery: what the burst really took. */
  deliveredEventsPerSecond: number;
  complete: boolean;
  queueBound: boolean;
}

export interface LedgerResult {
  /** Whether wrangler.toml declares a D1 database. */
  bound: boolean;
  /** Whether wrangler.toml binds VERO_QUEUE: without it (as shipped) outbound makes no consumer batches. */
  veroQueued: boolean;
  /** `vero batch` lines the bridge (default config) wrote over the whole run. */
  batches: number;
  /** D1 reads and writes per consumer batch, from the lines that carry `d1Statements` (or `ledgerQueries`). */
  queriesPerBatch?: FieldStats;
  messagesPerBatch?: FieldStats;
}

export interface EndToEnd {
  durationMsPerPoint: number;
  sweeps: Sweep[];
  points: PointResult[];
  latency: LatencyPoint[];
  bursts: BurstResult[];
  profiles: ProfiledPoint[];
  queueBound: boolean;
  ledger: LedgerResult;
  /** Sweeps left out, and why (e.g. no ledger to remove). */
  skipped: string[];
}

export interface EndToEndOptions {
  sweeps: Sweep[];
  durationMs: number;
  burstEvents: number;
  /** Senders and Segment's answer delay for the latency point. */
  latency: { concurrency: number; segmentDelayMs: number };
  /** Senders of the profiled points. */
  profileConcurrency: number;
  log: (line: string) => void;
}

function hmacHex(body: string): string {
  return createHmac("sha1", DEV_SECRETS.SEGMENT_SHARED_SECRET).update(body).digest("hex");
}

/** Each fixture with VARIANTS distinct users and timestamps, shuffled deterministically by interleaving. */
async function veroBodies(): Promise<string[]> {
  const fixtures = await veroFixtures();
  const bodies: string[] = [];
  for (let i = 0; i < VARIANTS; i += 1)
    for (const { payload } of fixtures) {
      const copy = structuredClone(payload);
      const user = copy.user as Record<string, unknown> | undefined;
      if (user) user.id = 100_000 + i;
      const type = typeof copy.type === "string" ? copy.type : undefined;
      if (type && typeof copy[`${type}_at`] === "number") copy[`${type}_at`] = (copy[`${type}_at`] as number) + i;
      bodies.push(JSON.stringify(copy));
    }
  return bodies;
}

/**
 * Segment events signed as Segment signs them, each with a messageId never
 * sent before in this run: with a ledger bound, a repeated messageId would be
 * skipped rather than delivered, and the bridge would be measured doing less.
 */
async function segmentEvents(): Promise<() => { body: string; signature: string }> {
  const fixtures = await segmentFixtures();
  let sequence = 0;
  return () => {
    const { name, payload } = fixtures[sequence % fixtures.length] as (typeof fixtures)[number];
    const body = JSON.stringify({ ...payload, messageId: `bench-${name}-${sequence}` });
    sequence += 1;
    return { body, signature: hmacHex(body) };
  };
}

interface Settled {
  calls: RecordedCall[];
  complete: boolean;
  /** When the condition held (or the calls stopped changing), on performance.now()'s clock. */
  at: number;
}

/**
 * Waits for deliveries after the load stops: until `done` holds, or, without
 * `done`, until the count has not moved for `quietMs`; gives up after
 * `timeoutMs`. Inline delivery settles at once; a queue takes its batch timeout.
 */
async function settle(
  client: StandInClient,
  key: string,
  options: { done?: (calls: RecordedCall[]) => boolean; quietMs: number; timeoutMs: number },
): Promise<Settled> {
  const started = performance.now();
  let last = -1;
  let lastChange = started;
  for (;;) {
    const calls = await client.calls(key);
    const now = performance.now();
    if (calls.length !== last) {
      last = calls.length;
      lastChange = now;
    }
    if (options.done?.(calls)) return { calls, complete: true, at: now };
    if (!options.done && now - lastChange >= options.quietMs) return { calls, complete: true, at: lastChange };
    if (now - started > options.timeoutMs) return { calls, complete: false, at: now };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Copies of wrangler.toml for inline delivery (no queue producers), with and
 * without the D1 database, in bench/.out/; undefined when none is declared.
 * Queue mode needs the ledger for its dead letters, so its cost is measured
 * where it can be left out: inline, where every request reads and writes it.
 */
async function inlineConfigs(toml: string): Promise<{ ledger: string; noLedger: string } | undefined> {
  if (!hasTables(toml, "d1_databases")) return undefined;
  await mkdir(OUT, { recursive: true });
  const inline = withoutTables(toml, "queues.producers");
  const ledger = join(OUT, "wrangler.inline.toml");
  const noLedger = join(OUT, "wrangler.inline-no-ledger.toml");
  await writeFile(ledger, relocated(inline, BRIDGE_CONFIG, OUT));
  await writeFile(noLedger, relocated(withoutTables(inline, "d1_databases"), BRIDGE_CONFIG, OUT));
  return { ledger, noLedger };
}

const isBridge = (worker: WorkerName) => worker !== "naive";

export async function measureEndToEnd(options: EndToEndOptions): Promise<EndToEnd> {
  const toml = await readFile(BRIDGE_CONFIG, "utf8");
  const withQueue = hasTables(toml, "queues.producers");
  const inline = await inlineConfigs(toml);
  const skipped: string[] = [];
  const sweeps = options.sweeps.filter((sweep) => {
    if (!sweep.worker.startsWith("bridgeInline") || inline) return true;
    skipped.push(`${WORKER_LABELS[sweep.worker]} ${sweep.direction}: wrangler.toml declares no [[d1_databases]]`);
    return false;
  });
  const configOf = (worker: WorkerName): string =>
    worker === "bridgeInline" && inline
      ? inline.ledger
      : worker === "bridgeInlineNoLedger" && inline
        ? inline.noLedger
        : BRIDGE_CONFIG;
  const workers = [...new Set<WorkerName>(["bridge", "naive", ...sweeps.map((sweep) => sweep.worker)])];

  // Every Worker its own Segment and Vero tenant, so no point ever counts another's calls.
  const keys = Object.fromEntries(
    workers.map((worker) => [worker, { segment: `bench-${worker}-segment`, vero: `bench-${worker}-vero` }]),
  ) as Record<WorkerName, { segment: string; vero: string }>;
  const segment = await startSegmentStandIn({ tenants: workers.map((worker) => keys[worker].segment) });
  const vero = await startVeroStandIn({ tenants: workers.map((worker) => keys[worker].vero) });
  const segmentClient = new StandInClient(segment.url);
  const veroClient = new StandInClient(vero.url);
  const batchLines: Record<string, unknown>[] = [];
  const running = new Map<WorkerName, RunningBridge>();
  try {
    options.log(`starting ${workers.map((worker) => WORKER_LABELS[worker]).join(", ")} under wrangler dev...`);
    const start = (worker: WorkerName): Promise<RunningBridge> => {
      if (worker === "naive")
        return startBridge({
          config: NAIVE_CONFIG,
          vars: {
            SEGMENT_API_HOST: segment.url,
            SEGMENT_WRITE_KEY: keys.naive.segment,
            VERO_API_URL: `${vero.url}/api/v2`,
            VERO_AUTH_TOKEN: keys.naive.vero,
          },
          stdio: "ignore",
          readyPath: "/",
        });
      return startBridge({
        config: configOf(worker),
        // The ledger's schema, as `npm start` applies it; a copy without the database has none to apply.
        migrate: hasTables(toml, "d1_databases") && worker !== "bridgeInlineNoLedger",
        vars: {
          ...devBindings(segment.url, vero.url),
          SEGMENT_WRITE_KEY: keys[worker].segment,
          VERO_AUTH_TOKEN: keys[worker].vero,
          // The default instance leaves the rate to the code's default, which is what is judged.
          ...(worker === "bridgeFullLog" ? { LOG_SAMPLE_RATE: "1" } : {}),
        },
        // Every bridge pipes its output alike, so that writing it costs each the same.
        stdio: "pipe",
        onLine:
          worker === "bridge"
            ? (line) => {
                const summary = logLine(line, "vero batch");
                if (summary) batchLines.push(summary);
              }
            : undefined,
        // Unminified (wrangler.toml minifies what is deployed): the same code, but the isolate
        // profile names functions instead of minified letters.
        args: ["--minify", "false"],
      });
    };
    const started = await Promise.allSettled(workers.map(start));
    started.forEach((result, index) => {
      if (result.status === "fulfilled") running.set(workers[index] as WorkerName, result.value);
    });
    const failedStart = started.find((result) => result.status === "rejected");
    if (failedStart) throw failedStart.reason;
    const instance = (worker: WorkerName) => running.get(worker) as RunningBridge;

    const vBodies = await veroBodies();
    const nextSegmentEvent = await segmentEvents();
    const json = { "content-type": "application/json" };
    const inboundPath = `/vero/webhook?token=${DEV_SECRETS.VERO_WEBHOOK_TOKEN}`;
    const request =
      (worker: WorkerName, direction: Direction) =>
      (i: number): BenchRequest => {
        if (direction === "outbound") {
          const { body, signature } = nextSegmentEvent();
          return { path: "/segment", body, headers: { ...json, "x-signature": signature } };
        }
        return {
          path: worker === "naive" ? "/" : inboundPath,
          body: vBodies[i % vBodies.length] as string,
          headers: json,
        };
      };
    // A queue's consumer waits for its batch timeout; inline delivery is done when the answer is.
    const settleTimeoutMs = withQueue ? 30_000 : 10_000;

    /** Until the stand-in holds what the Worker acknowledged (outbound through a queue: until its calls stop). */
    const settleFor = (worker: WorkerName, direction: Direction, acknowledged: number) =>
      direction === "inbound"
        ? settle(segmentClient, keys[worker].segment, {
            done: (calls) => segmentMessages(calls).length >= acknowledged,
            quietMs: 500,
            timeoutMs: settleTimeoutMs,
          })
        : settle(veroClient, keys[worker].vero, {
            // One Vero call per event for the naive forwarder; the bridge's count varies by event.
            done: worker === "naive" || !withQueue ? (calls) => calls.length >= acknowledged : undefined,
            // The Vero consumer's batch timeout is 1 s: no call for 3 s means the queue is empty.
            quietMs: 3000,
            timeoutMs: settleTimeoutMs,
          });

    const clear = (worker: WorkerName) =>
      Promise.all([segmentClient.clear(keys[worker].segment), veroClient.clear(keys[worker].vero)]);

    const toPoint = (
      worker: WorkerName,
      direction: Direction,
      load: LoadResult,
      settled: Settled,
      cpu: CpuShare,
    ): PointResult => ({
      worker,
      direction,
      concurrency: load.concurrency,
      eventsPerSecond: round(load.eventsPerSecond, 1),
      p50Ms: round(load.latency.p50, 2),
      p99Ms: round(load.latency.p99, 2),
      ok: load.ok,
      failed: load.failed,
      statuses: load.statuses,
      firstFailure: load.firstFailure,
      upstreamRequests: settled.calls.length,
      upstreamRequestsPerEvent: round(settled.calls.length / Math.max(1, load.ok), 3),
      delivered: settled.complete,
      cpu,
    });

    const measurePoint = async (worker: WorkerName, direction: Direction, concurrency: number) => {
      await clear(worker);
      const meter = cpuMeter();
      const load = await runLoad({
        origin: instance(worker).url,
        concurrency,
        durationMs: options.durationMs,
        request: request(worker, direction),
      });
      const cpu = meter();
      return toPoint(worker, direction, load, await settleFor(worker, direction, load.ok), cpu);
    };
    const describe = (p: PointResult) =>
      `${p.direction.padEnd(8)} ${WORKER_LABELS[p.worker].padEnd(26)} c=${String(p.concurrency).padStart(3)}: ${p.eventsPerSecond} events/s, p50 ${p.p50Ms} ms, p99 ${p.p99Ms} ms${p.failed ? `, ${p.failed} failed (${p.firstFailure ?? ""})` : ""}`;

    // Warm-up, not recorded: JIT, connection pools, wrangler's first-request work; then let the queues drain.
    const used = [...new Set(sweeps.map((sweep) => `${sweep.worker} ${sweep.direction}`))].map(
      (pair) => pair.split(" ") as [WorkerName, Direction],
    );
    for (const [worker, direction] of used)
      await runLoad({
        origin: instance(worker).url,
        concurrency: 8,
        durationMs: 1000,
        request: request(worker, direction),
      });
    await Promise.all(
      workers
        .filter(isBridge)
        .map((worker) => settle(veroClient, keys[worker].vero, { quietMs: 3000, timeoutMs: settleTimeoutMs })),
    );

    const points: PointResult[] = [];
    for (const direction of ["inbound", "outbound"] as const) {
      const inDirection = sweeps.filter((sweep) => sweep.direction === direction);
      const concurrencies = [...new Set(inDirection.flatMap((sweep) => sweep.concurrencies))].sort((a, b) => a - b);
      for (const [index, concurrency] of concurrencies.entries()) {
        const here = inDirection.filter((sweep) => sweep.concurrencies.includes(concurrency)).map((s) => s.worker);
        // Alternating who goes first, so a drift in machine load does not always favour the same side.
        for (const worker of index % 2 === 0 ? here : here.reverse()) {
          const result = await measurePoint(worker, direction, concurrency);
          points.push(result);
          options.log(`  ${describe(result)}`);
        }
      }
    }

    // A distant Segment: does the bridge's acknowledgement wait for it? (The naive forwarder's must.)
    const latency: LatencyPoint[] = [];
    for (const worker of ["naive", "bridge"] as const) {
      await segmentClient.fail(keys[worker].segment, { delayMs: options.latency.segmentDelayMs });
      try {
        const result = await measurePoint(worker, "inbound", options.latency.concurrency);
        latency.push({ ...result, segmentDelayMs: options.latency.segmentDelayMs });
        options.log(`  latency, Segment answering after ${options.latency.segmentDelayMs} ms: ${describe(result)}`);
      } finally {
        await segmentClient.heal(keys[worker].segment);
      }
    }

    const bursts: BurstResult[] = [];
    for (const worker of ["naive", "bridge"] as const) {
      await clear(worker);
      const startedAt = performance.now();
      const load = await runLoad({
        origin: instance(worker).url,
        concurrency: 32,
        total: options.burstEvents,
        request: request(worker, "inbound"),
      });
      const lastAck = startedAt + load.elapsedMs;
      const settled = await settleFor(worker, "inbound", load.ok);
      const messages = segmentMessages(settled.calls).length;
      // The stand-in stamps each call with Date.now(); map the last one onto this clock.
      const lastCallWall = settled.calls.length > 0 ? Math.max(...settled.calls.map((call) => call.at)) : Date.now();
      const lastDelivery = performance.now() - (Date.now() - lastCallWall);
      const burst: BurstResult = {
        worker,
        events: options.burstEvents,
        concurrency: 32,
        ok: load.ok,
        failed: load.failed,
        segmentRequests: settled.calls.length,
        segmentMessages: messages,
        segmentRequestsPerEvent: round(settled.calls.length / Math.max(1, load.ok), 3),
        drainMs: round(Math.max(0, lastDelivery - lastAck), 0),
        deliveredEventsPerSecond: round(messages / ((Math.max(lastDelivery, lastAck) - startedAt) / 1000), 1),
        complete: settled.complete,
        queueBound: worker === "bridge" && withQueue,
      };
      bursts.push(burst);
      options.log(
        `  burst    ${worker.padEnd(6)} ${burst.ok}/${burst.events} acked, ${burst.segmentRequests} Segment requests (${burst.segmentRequestsPerEvent}/event), drained ${burst.drainMs} ms after the last ack${burst.complete ? "" : " (INCOMPLETE: timed out)"}`,
      );
    }

    const profiles: ProfiledPoint[] = [];
    for (const direction of ["inbound", "outbound"] as const)
      for (const worker of ["bridge", "naive"] as const) {
        await clear(worker);
        const { result, profile } = await profileWorker(
          instance(worker),
          () =>
            runLoad({
              origin: instance(worker).url,
              concurrency: options.profileConcurrency,
              durationMs: options.durationMs,
              request: request(worker, direction),
            }),
          { inclusiveOf: isBridge(worker) ? (name) => mappingFrame.test(name) : undefined },
        );
        // Not measured, but the next profile must not share the isolate with this one's queue backlog.
        await settleFor(worker, direction, result.ok);
        const cpuMsPerEvent = profile.busyMs / Math.max(1, result.ok);
        const mappingShare = profile.inclusiveShare ?? null;
        const profiled: ProfiledPoint = {
          worker,
          direction,
          concurrency: options.profileConcurrency,
          eventsPerSecond: round(result.eventsPerSecond, 1),
          isolateBusyShare: profile.busyShare,
          isolateCpuMsPerEvent: round(cpuMsPerEvent, 2),
          hotspots: profile.hotspots,
          mappingShare,
          mappingCpuMsPerEvent: mappingShare === null ? null : round(mappingShare * cpuMsPerEvent, 3),
          logFramesInTop: profile.hotspots
            .slice(0, TOP_FRAMES)
            .map((spot) => spot.frame)
            .filter((frame) => isLogFrame(functionOf(frame))),
        };
        profiles.push(profiled);
        options.log(
          `  profile  ${WORKER_LABELS[worker]} ${direction}: isolate busy ${Math.round(profile.busyShare * 100)}%, ${profiled.isolateCpuMsPerEvent} ms CPU/event${mappingShare === null ? "" : `, mapping ${Math.round(mappingShare * 1000) / 10}%`}`,
        );
      }

    return {
      durationMsPerPoint: options.durationMs,
      sweeps,
      points,
      latency,
      bursts,
      profiles,
      queueBound: withQueue,
      ledger: {
        bound: inline !== undefined,
        veroQueued: /^binding\s*=\s*"VERO_QUEUE"/m.test(toml),
        batches: batchLines.length,
        // The mailboxes' consumer reports d1Statements; the consumer before them, ledgerQueries.
        queriesPerBatch: fieldStats(batchLines, "d1Statements") ?? fieldStats(batchLines, "ledgerQueries"),
        messagesPerBatch: fieldStats(batchLines, "messages"),
      },
      skipped,
    };
  } finally {
    await Promise.all([...running.values()].map((worker) => worker.stop()));
    await Promise.all([segment.close(), vero.close()]);
  }
}
