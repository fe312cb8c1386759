/**
 * End to end under `wrangler dev`: the bridge and the naive forwarder run side
 * by side against the same in-process stand-ins, and are measured alternately
 * in the same run, so their ratio survives this machine's noise.
 */
import { createHmac } from "node:crypto";
import { readFile } from "node:fs/promises";
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
import { round } from "./lib/stats.ts";
import { profileWorker, type WorkerProfile } from "./lib/worker-profile.ts";

const ROOT = join(import.meta.dirname, "..");
const NAIVE_CONFIG = join(ROOT, "dev", "naive-forwarder", "wrangler.toml");
/** Its own Segment tenant, so its calls are never counted as the bridge's. */
const NAIVE_WRITE_KEY = "bench-naive-forwarder-write-key";
/** Distinct bodies per fixture: every webhook gets its own user and time, so its own messageId. */
const VARIANTS = 400;

export interface PointResult {
  target: "bridge" | "naive";
  direction: "inbound" | "outbound";
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

/** A point run again under the isolate's CPU profiler: how busy the Worker was, and on what. */
export interface ProfiledPoint {
  target: "bridge" | "naive";
  direction: "inbound" | "outbound";
  concurrency: number;
  /** Under the profiler, so a little below the unprofiled figure. */
  eventsPerSecond: number;
  isolateBusyShare: number;
  isolateCpuMsPerEvent: number;
  hotspots: WorkerProfile["hotspots"];
}

export interface BurstResult {
  target: "bridge" | "naive";
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

export interface EndToEnd {
  durationMsPerPoint: number;
  concurrencies: number[];
  points: PointResult[];
  bursts: BurstResult[];
  profiles: ProfiledPoint[];
  queueBound: boolean;
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

async function segmentBodies(): Promise<{ body: string; signature: string }[]> {
  const fixtures = await segmentFixtures();
  const bodies: { body: string; signature: string }[] = [];
  for (let i = 0; i < VARIANTS; i += 1)
    for (const { name, payload } of fixtures) {
      const body = JSON.stringify({ ...payload, messageId: `bench-${name}-${i}` });
      bodies.push({ body, signature: hmacHex(body) });
    }
  return bodies;
}

/** Whether the bridge's wrangler.toml binds a queue producer (the durability work). */
async function queueBound(): Promise<boolean> {
  return /^\s*\[\[queues\.producers\]\]/m.test(await readFile(join(ROOT, "wrangler.toml"), "utf8"));
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

export async function measureEndToEnd(options: {
  concurrencies: number[];
  durationMs: number;
  burstEvents: number;
  log: (line: string) => void;
}): Promise<EndToEnd> {
  const segment = await startSegmentStandIn({ tenants: [DEV_SECRETS.SEGMENT_WRITE_KEY, NAIVE_WRITE_KEY] });
  const vero = await startVeroStandIn({ tenants: [DEV_SECRETS.VERO_AUTH_TOKEN] });
  const segmentClient = new StandInClient(segment.url);
  const veroClient = new StandInClient(vero.url);
  const withQueue = await queueBound();
  const running: RunningBridge[] = [];
  try {
    options.log("starting the bridge and the naive forwarder under wrangler dev...");
    const [bridge, naive] = await Promise.all([
      // Unminified (wrangler.toml minifies what is deployed): the same code, but the isolate
      // profile below names functions instead of minified letters.
      startBridge({ vars: devBindings(segment.url, vero.url), stdio: "ignore", args: ["--minify", "false"] }),
      startBridge({
        config: NAIVE_CONFIG,
        vars: { SEGMENT_API_HOST: segment.url, SEGMENT_WRITE_KEY: NAIVE_WRITE_KEY },
        stdio: "ignore",
        readyPath: "/",
      }),
    ]);
    running.push(bridge, naive);

    const vBodies = await veroBodies();
    const sBodies = await segmentBodies();
    const json = { "content-type": "application/json" };
    const inboundPath = `/vero/webhook?token=${DEV_SECRETS.VERO_WEBHOOK_TOKEN}`;
    const requests = {
      bridge: (i: number): BenchRequest => ({
        path: inboundPath,
        body: vBodies[i % vBodies.length] as string,
        headers: json,
      }),
      naive: (i: number): BenchRequest => ({ path: "/", body: vBodies[i % vBodies.length] as string, headers: json }),
      outbound: (i: number): BenchRequest => {
        const { body, signature } = sBodies[i % sBodies.length] as { body: string; signature: string };
        return { path: "/segment", body, headers: { ...json, "x-signature": signature } };
      },
    };
    const origins = { bridge: bridge.url, naive: naive.url };
    const segmentKey = { bridge: DEV_SECRETS.SEGMENT_WRITE_KEY, naive: NAIVE_WRITE_KEY };
    // A queue's consumer waits for its batch timeout; inline delivery is done when the answer is.
    const settleTimeoutMs = withQueue ? 30_000 : 10_000;

    const clearAll = () =>
      Promise.all([
        segmentClient.clear(segmentKey.bridge),
        segmentClient.clear(segmentKey.naive),
        veroClient.clear(DEV_SECRETS.VERO_AUTH_TOKEN),
      ]);

    const inboundPoint = async (target: "bridge" | "naive", concurrency: number): Promise<PointResult> => {
      await clearAll();
      const meter = cpuMeter();
      const load = await runLoad({
        origin: origins[target],
        concurrency,
        durationMs: options.durationMs,
        request: requests[target],
      });
      const cpu = meter();
      const settled = await settle(segmentClient, segmentKey[target], {
        done: (calls) => segmentMessages(calls).length >= load.ok,
        quietMs: 500,
        timeoutMs: settleTimeoutMs,
      });
      return point(target, "inbound", load, settled, cpu);
    };

    const point = (
      target: "bridge" | "naive",
      direction: "inbound" | "outbound",
      load: LoadResult,
      settled: Settled,
      cpu: CpuShare,
    ): PointResult => ({
      target,
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

    // Warm-up, not recorded: JIT, connection pools, wrangler's first-request work.
    for (const target of ["naive", "bridge"] as const)
      await runLoad({ origin: origins[target], concurrency: 8, durationMs: 1000, request: requests[target] });
    await runLoad({ origin: bridge.url, concurrency: 8, durationMs: 1000, request: requests.outbound });

    const points: PointResult[] = [];
    for (const [index, concurrency] of options.concurrencies.entries()) {
      // Alternating who goes first, so a drift in machine load does not always favour the same side.
      const order = index % 2 === 0 ? (["naive", "bridge"] as const) : (["bridge", "naive"] as const);
      for (const target of order) {
        const result = await inboundPoint(target, concurrency);
        points.push(result);
        options.log(
          `  inbound  ${target.padEnd(6)} c=${String(concurrency).padStart(3)}: ${result.eventsPerSecond} events/s, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms${result.failed ? `, ${result.failed} failed` : ""}`,
        );
      }
    }

    const outboundConcurrency = options.concurrencies.includes(32) ? 32 : (options.concurrencies.at(-1) ?? 32);
    await clearAll();
    const outboundMeter = cpuMeter();
    const outboundLoad = await runLoad({
      origin: bridge.url,
      concurrency: outboundConcurrency,
      durationMs: options.durationMs,
      request: requests.outbound,
    });
    const outboundCpu = outboundMeter();
    const outboundSettled = await settle(veroClient, DEV_SECRETS.VERO_AUTH_TOKEN, {
      quietMs: withQueue ? 6000 : 500,
      timeoutMs: settleTimeoutMs,
    });
    const outbound = point("bridge", "outbound", outboundLoad, outboundSettled, outboundCpu);
    points.push(outbound);
    options.log(
      `  outbound bridge c=${String(outboundConcurrency).padStart(3)}: ${outbound.eventsPerSecond} events/s, p50 ${outbound.p50Ms} ms, p99 ${outbound.p99Ms} ms${outbound.failed ? `, ${outbound.failed} failed` : ""}`,
    );

    const bursts: BurstResult[] = [];
    for (const target of ["naive", "bridge"] as const) {
      await clearAll();
      const started = performance.now();
      const load = await runLoad({
        origin: origins[target],
        concurrency: 32,
        total: options.burstEvents,
        request: requests[target],
      });
      const lastAck = started + load.elapsedMs;
      const settled = await settle(segmentClient, segmentKey[target], {
        done: (calls) => segmentMessages(calls).length >= load.ok,
        quietMs: 500,
        timeoutMs: settleTimeoutMs,
      });
      const messages = segmentMessages(settled.calls).length;
      // The stand-in stamps each call with Date.now(); map the last one onto this clock.
      const lastCallWall = settled.calls.length > 0 ? Math.max(...settled.calls.map((call) => call.at)) : Date.now();
      const lastDelivery = performance.now() - (Date.now() - lastCallWall);
      const burst: BurstResult = {
        target,
        events: options.burstEvents,
        concurrency: 32,
        ok: load.ok,
        failed: load.failed,
        segmentRequests: settled.calls.length,
        segmentMessages: messages,
        segmentRequestsPerEvent: round(settled.calls.length / Math.max(1, load.ok), 3),
        drainMs: round(Math.max(0, lastDelivery - lastAck), 0),
        deliveredEventsPerSecond: round(messages / ((Math.max(lastDelivery, lastAck) - started) / 1000), 1),
        complete: settled.complete,
        queueBound: target === "bridge" && withQueue,
      };
      bursts.push(burst);
      options.log(
        `  burst    ${target.padEnd(6)} ${burst.ok}/${burst.events} acked, ${burst.segmentRequests} Segment requests (${burst.segmentRequestsPerEvent}/event), drained ${burst.drainMs} ms after the last ack${burst.complete ? "" : " (INCOMPLETE: timed out)"}`,
      );
    }

    const profiles: ProfiledPoint[] = [];
    const profiled = [
      { target: "naive", direction: "inbound", request: requests.naive },
      { target: "bridge", direction: "inbound", request: requests.bridge },
      { target: "bridge", direction: "outbound", request: requests.outbound },
    ] as const;
    for (const { target, direction, request } of profiled) {
      const { result, profile } = await profileWorker(target === "bridge" ? bridge : naive, () =>
        runLoad({ origin: origins[target], concurrency: outboundConcurrency, durationMs: options.durationMs, request }),
      );
      profiles.push({
        target,
        direction,
        concurrency: outboundConcurrency,
        eventsPerSecond: round(result.eventsPerSecond, 1),
        isolateBusyShare: profile.busyShare,
        isolateCpuMsPerEvent: round(profile.busyMs / Math.max(1, result.ok), 2),
        hotspots: profile.hotspots,
      });
      options.log(
        `  profile  ${target.padEnd(6)} ${direction}: isolate busy ${Math.round(profile.busyShare * 100)}%, ${round(profile.busyMs / Math.max(1, result.ok), 2)} ms CPU/event`,
      );
    }
    await clearAll();

    return {
      durationMsPerPoint: options.durationMs,
      concurrencies: options.concurrencies,
      points,
      bursts,
      profiles,
      queueBound: withQueue,
    };
  } finally {
    await Promise.all(running.map((instance) => instance.stop()));
    await Promise.all([segment.close(), vero.close()]);
  }
}
