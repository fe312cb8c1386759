/**
 * `npm run bench`: every figure issues 7, 11 and 13 ask for, in one run,
 * measured on this machine. Prints a table, writes bench/results.json and
 * bench/throughput.svg, and rewrites the results section of bench/README.md.
 *
 * BENCH_SECONDS sets the measurement window per end-to-end point (default 3).
 * BENCH_QUICK=1 is a smoke run of the bench itself (every sweep at 8 senders
 * only, 1 s per point, no size step) that writes to bench/.out/ instead.
 *
 * `npm run bench -- drain` runs the outbound drain point alone: it rewrites
 * only its own section of bench/README.md and its key of results.json.
 * BENCH_DRAIN_USERS (e.g. "10,100"), BENCH_DRAIN_EVENTS and
 * BENCH_DRAIN_TIMEOUT_SECONDS change its load and its cut;
 * BENCH_DRAIN_DEFAULT_RUNTIME_USERS (default "100", "" for none) the
 * points measured again on `wrangler dev`'s defaults (see bench/drain.ts).
 *
 * `npm run bench -- cost` runs the cost points (sparse, burst, retry) and the
 * hot-user points alone, rewriting only their section of bench/README.md and
 * their key of results.json; BENCH_COST_POINTS (e.g. "sparse,retry") picks
 * some of them (see bench/cost.ts).
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { cpus, freemem, release, totalmem, type } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { COST_POINTS, type CostPointName, measureCost } from "./cost.ts";
import { costGoals, costTable, writeCostSection } from "./cost-report.ts";
import { measureDrain } from "./drain.ts";
import { drainGoals, drainTable, writeDrainSection } from "./drain-report.ts";
import {
  type Direction,
  type EndToEnd,
  measureEndToEnd,
  type PointResult,
  type Sweep,
  TOP_FRAMES,
  WORKER_LABELS,
  type WorkerName,
} from "./e2e.ts";
import { GOAL_HEADER, type Goal, goalCells } from "./lib/goals.ts";
import { lineChartSvg, type Series } from "./lib/svg.ts";
import { type Cell, renderMarkdownTable, renderTable } from "./lib/table.ts";
import { measureMapping } from "./mapping.ts";
import { type BundleMeasurement, type ColdStart, measureBundle, measureColdStart } from "./size.ts";

const ROOT = join(import.meta.dirname, "..");
const QUICK = process.env.BENCH_QUICK === "1";
/** A smoke run must never overwrite the committed results. */
const OUT = QUICK ? join(import.meta.dirname, ".out") : import.meta.dirname;
const seconds = Number(process.env.BENCH_SECONDS ?? (QUICK ? 1 : 3));
/** Where the throughput, profile and ledger goals are judged. */
const GOAL_SENDERS = QUICK ? 8 : 32;
const LATENCY = { concurrency: 8, segmentDelayMs: 80 };
const BURST_EVENTS = QUICK ? 200 : 1000;
const SIZE_GOAL_BYTES = 108 * 1024;
const BURST_GOAL = 0.05;
const THROUGHPUT_GOAL = 1.3;
const LATENCY_GOAL = 0.5;
const MAPPING_SHARE_GOAL = 0.1;
const LEDGER_QUERIES_GOAL = 2;
const DRAIN_ONLY = process.argv.slice(2).includes("drain");
const COST_ONLY = process.argv.slice(2).includes("cost");
/** The cost points and the hot-user points, Vero answering after 150 ms as in the drain. */
const COST = {
  points: (process.env.BENCH_COST_POINTS ?? Object.keys(COST_POINTS).join(","))
    .split(",")
    .filter(Boolean)
    .map((name) => {
      const spec = COST_POINTS[name as CostPointName];
      if (!spec) throw new Error(`BENCH_COST_POINTS: no point named ${name} (${Object.keys(COST_POINTS).join(", ")})`);
      return spec;
    }),
  veroDelayMs: 150,
  timeoutMs: Number(process.env.BENCH_DRAIN_TIMEOUT_SECONDS ?? 60) * 1000,
  log: (line: string) => log(line),
};
/** The issue's load: each of these users sends 8 events, Vero answers after 150 ms. */
const DRAIN = {
  users: (process.env.BENCH_DRAIN_USERS ?? (QUICK ? "10" : "10,100,1000")).split(",").map(Number),
  defaultRuntime: (process.env.BENCH_DRAIN_DEFAULT_RUNTIME_USERS ?? (QUICK ? "" : "100"))
    .split(",")
    .filter(Boolean)
    .map(Number),
  queued: (process.env.BENCH_DRAIN_QUEUED_USERS ?? (QUICK ? "" : "100")).split(",").filter(Boolean).map(Number),
  reference: (process.env.BENCH_DRAIN_REFERENCE_USERS ?? (QUICK ? "" : "100")).split(",").filter(Boolean).map(Number),
  eventsPerUser: Number(process.env.BENCH_DRAIN_EVENTS ?? 8),
  veroDelayMs: 150,
  // The hot-user point: BENCH_DRAIN_USERS=1 BENCH_DRAIN_EVENTS=200, strict or with this opt-in.
  vars: process.env.BENCH_VERO_TRACK_CONCURRENCY
    ? { VERO_TRACK_CONCURRENCY: process.env.BENCH_VERO_TRACK_CONCURRENCY }
    : undefined,
  timeoutMs: Number(process.env.BENCH_DRAIN_TIMEOUT_SECONDS ?? 60) * 1000,
  log: (line: string) => log(line),
};

/**
 * What runs at which concurrency (README, "What is measured", says why):
 * saturation (128) only where the curve has been followed since the start,
 * the other lines at 8 and the goals' 32, the ledger comparison at 32 alone.
 */
const SWEEPS: Sweep[] = QUICK
  ? (["bridge", "naive", "bridgeFullLog", "bridgeInline", "bridgeInlineNoLedger"] as const).flatMap((worker) =>
      (["inbound", "outbound"] as const)
        .filter((direction) => !worker.startsWith("bridgeInline") || direction === "outbound")
        .map((direction) => ({ worker, direction, concurrencies: [8] })),
    )
  : [
      { worker: "bridge", direction: "inbound", concurrencies: [8, 32, 128] },
      { worker: "naive", direction: "inbound", concurrencies: [8, 32, 128] },
      { worker: "bridgeFullLog", direction: "inbound", concurrencies: [8, 32] },
      { worker: "bridge", direction: "outbound", concurrencies: [8, 32] },
      { worker: "naive", direction: "outbound", concurrencies: [8, 32] },
      { worker: "bridgeFullLog", direction: "outbound", concurrencies: [8, 32] },
      { worker: "bridgeInline", direction: "outbound", concurrencies: [32] },
      { worker: "bridgeInlineNoLedger", direction: "outbound", concurrencies: [32] },
    ];

const log = (line: string) => process.stdout.write(`${line}\n`);
const started = performance.now();
const require = createRequire(import.meta.url);
const versionOf = (name: string) => (require(`${name}/package.json`) as { version: string }).version;

const machine = {
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  freeMemoryGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
  os: `${type()} ${release()}`,
  node: process.version,
  wrangler: versionOf("wrangler"),
  // The workerd wrangler runs, which may differ from the top-level one.
  workerd: (createRequire(require.resolve("wrangler/package.json"))("workerd/package.json") as { version: string })
    .version,
};

async function step<T>(name: string, work: () => Promise<T>): Promise<T | { error: string }> {
  log(`\n${name}...`);
  const at = performance.now();
  try {
    const result = await work();
    log(`${name}: done in ${((performance.now() - at) / 1000).toFixed(1)} s`);
    return result;
  } catch (error) {
    log(`${name}: FAILED ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return { error: error instanceof Error ? error.message : String(error) };
  }
}
const failed = (value: unknown): value is { error: string } =>
  typeof value === "object" && value !== null && "error" in value;

const readmePath = join(import.meta.dirname, "README.md");
const runLine = (what: string, at: string, seconds: number) =>
  `Generated by \`${what}\`${QUICK ? " (BENCH_QUICK smoke run)" : ""} on ${at} in ${seconds} s, on ${machine.cores} × ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}, wrangler ${machine.wrangler}, workerd ${machine.workerd}.`;

/** The repository's formatter owns Markdown too; without this, `npm run lint` would fail after every run. */
async function formatReadme(target: string): Promise<void> {
  if (QUICK) return;
  await promisify(execFile)(join(ROOT, "node_modules", ".bin", "biome"), ["format", "--write", target]).catch(
    (error: unknown) => log(`biome format of bench/README.md failed: ${String(error)}`),
  );
}

/**
 * `npm run bench -- drain` or `-- cost`: one point alone, printed, merged into results.json under `key`, and its
 * README section rewritten.
 */
async function runOnePoint<T extends object>(
  key: "drain" | "cost",
  what: string,
  measure: () => Promise<T | { error: string }>,
  report: {
    table: (result: T) => { title: string; header: string[]; rows: Cell[][] };
    goals: (result: T | { error: string }) => Goal[];
    write: (readmePath: string, target: string, result: T, header: string) => Promise<void>;
  },
): Promise<never> {
  const result = await step(what, measure);
  const tookSeconds = Math.round((performance.now() - started) / 100) / 10;
  const generatedAt = new Date().toISOString();
  if (!failed(result)) {
    const table = report.table(result as T);
    log(`\n${table.title}\n${renderTable(table.header, table.rows)}\n`);
  }
  log(`Goals\n${renderTable(GOAL_HEADER, report.goals(result).map(goalCells))}\n`);
  await mkdir(OUT, { recursive: true });
  const resultsPath = join(OUT, "results.json");
  const previous = JSON.parse(await readFile(resultsPath, "utf8").catch(() => "{}")) as Record<string, unknown>;
  await writeFile(resultsPath, `${JSON.stringify({ ...previous, [key]: { generatedAt, ...result } }, null, 2)}\n`);
  if (!failed(result)) {
    const target = QUICK ? join(OUT, "README.md") : readmePath;
    await report.write(readmePath, target, result as T, runLine(`npm run bench -- ${key}`, generatedAt, tookSeconds));
    await formatReadme(target);
  }
  log(
    `wrote the ${key} point${key === "cost" ? "s" : ""} to ${QUICK ? "bench/.out/" : "bench/"}results.json and README.md`,
  );
  process.exit(0);
}

if (DRAIN_ONLY)
  await runOnePoint("drain", "outbound drain", () => measureDrain(DRAIN), {
    table: drainTable,
    goals: drainGoals,
    write: writeDrainSection,
  });

if (COST_ONLY)
  await runOnePoint("cost", "cost and hot-user points", () => measureCost(COST), {
    table: costTable,
    goals: costGoals,
    write: writeCostSection,
  });

// --- measure ------------------------------------------------------------------------------------

interface SizeResult {
  bridge: Omit<BundleMeasurement, "file" | "dispose"> & { coldStart: ColdStart };
  naive: Omit<BundleMeasurement, "file" | "dispose" | "composition"> & { coldStart: ColdStart };
}

const size = QUICK
  ? { error: "BENCH_QUICK: not measured in a smoke run" }
  : await step("bundle size and cold start", async (): Promise<SizeResult> => {
      const [bridge, naive] = await Promise.all([
        measureBundle(join(ROOT, "wrangler.toml")),
        measureBundle(join(ROOT, "dev", "naive-forwarder", "wrangler.toml")),
      ]);
      try {
        const { file: _bf, dispose: _bd, ...bridgeFigures } = bridge;
        const { file: _nf, dispose: _nd, composition: _nc, ...naiveFigures } = naive;
        return {
          bridge: { ...bridgeFigures, coldStart: await measureColdStart(bridge.file, bridge.config) },
          naive: { ...naiveFigures, coldStart: await measureColdStart(naive.file, naive.config) },
        };
      } finally {
        await Promise.all([bridge.dispose(), naive.dispose()]);
      }
    });

const mapping = await step("mapping cost (tinybench)", () => measureMapping(QUICK ? 200 : 1000));

const e2e = await step("end to end under wrangler dev", () =>
  measureEndToEnd({
    sweeps: SWEEPS,
    durationMs: seconds * 1000,
    burstEvents: BURST_EVENTS,
    latency: LATENCY,
    profileConcurrency: GOAL_SENDERS,
    log,
  }),
);

const drain = await step("outbound drain", () => measureDrain(DRAIN));

const cost = await step("cost and hot-user points", () => measureCost(COST));

// --- judge --------------------------------------------------------------------------------------

const goals: Goal[] = [];
const fmt = (value: number, digits = 2) => value.toLocaleString("en-US", { maximumFractionDigits: digits });
const percent = (share: number) => `${fmt(share * 100, 1)} %`;
const notMeasured = (goal: string, target: string, note: string): Goal => ({
  goal,
  target,
  measured: "not measured",
  met: null,
  note,
});

const pointAt = (run: EndToEnd, worker: WorkerName, direction: Direction, concurrency: number) =>
  run.points.find((p) => p.worker === worker && p.direction === direction && p.concurrency === concurrency);
const profileOf = (run: EndToEnd, worker: WorkerName, direction: Direction) =>
  run.profiles.find((p) => p.worker === worker && p.direction === direction);
const usable = (point: PointResult | undefined): point is PointResult =>
  point !== undefined && point.failed === 0 && point.ok > 0;
const failure = (point: PointResult | undefined) =>
  point === undefined
    ? "no such point in this run"
    : `answered ${JSON.stringify(point.statuses)}: ${point.firstFailure ?? ""}`;
const topFrames = (hotspots: readonly { frame: string; selfShare: number }[], count: number) =>
  hotspots
    .slice(0, count)
    .map((h) => `${h.frame} ${Math.round(h.selfShare * 100)}%`)
    .join("; ");

/** What the profiles and CPU meters of the run say about a throughput shortfall. */
function limits(run: EndToEnd, direction: Direction): string {
  const mine = profileOf(run, "bridge", direction);
  const naive = profileOf(run, "naive", direction);
  const point = pointAt(run, "bridge", direction, GOAL_SENDERS);
  const parts = [
    mine && naive
      ? `isolate CPU ${fmt(mine.isolateCpuMsPerEvent)} ms/event vs naive ${fmt(naive.isolateCpuMsPerEvent)} (busy ${Math.round(mine.isolateBusyShare * 100)}% vs ${Math.round(naive.isolateBusyShare * 100)}%)`
      : undefined,
    point?.cpu.machineBusy !== undefined ? `machine ${Math.round(point.cpu.machineBusy * 100)}% busy` : undefined,
    mine?.hotspots[0] ? `top of profile: ${topFrames(mine.hotspots, 2)}` : undefined,
    run.queueBound ? undefined : "no queue bound: the acknowledgement waits for the upstream call",
  ];
  return parts.filter(Boolean).join("; ");
}

/** The bridge (some variant) against the naive forwarder of the same direction, at `concurrency`. */
function versusNaive(
  run: EndToEnd,
  worker: WorkerName,
  direction: Direction,
  concurrency: number,
): { error: string } | { bridge: PointResult; naive: PointResult; ratio: number } {
  const bridge = pointAt(run, worker, direction, concurrency);
  const naive = pointAt(run, "naive", direction, concurrency);
  if (!usable(bridge)) return { error: `the ${WORKER_LABELS[worker]} ${failure(bridge)}` };
  if (!usable(naive)) return { error: `the naive forwarder ${failure(naive)}` };
  return { bridge, naive, ratio: bridge.eventsPerSecond / naive.eventsPerSecond };
}

const THROUGHPUT_TARGET = `≥ ${THROUGHPUT_GOAL}x`;
if (failed(e2e)) {
  for (const goal of [
    "inbound throughput vs naive forwarder",
    "outbound throughput vs naive forwarder",
    "acknowledgement latency, distant Segment",
    "mapping share of isolate CPU",
    "log not among the top frames",
    "ledger queries per consumer batch",
    "Segment requests per inbound event (burst)",
  ])
    goals.push(notMeasured(goal, "", e2e.error));
} else {
  for (const direction of ["inbound", "outbound"] as const) {
    const goal = `${direction} throughput at ${GOAL_SENDERS} senders vs naive ${direction} forwarder`;
    const result = versusNaive(e2e, "bridge", direction, GOAL_SENDERS);
    if ("error" in result) {
      goals.push(notMeasured(goal, THROUGHPUT_TARGET, result.error));
      continue;
    }
    goals.push({
      goal,
      target: THROUGHPUT_TARGET,
      measured: `${fmt(result.ratio)}x (${fmt(result.bridge.eventsPerSecond, 1)} vs ${fmt(result.naive.eventsPerSecond, 1)} events/s)`,
      met: result.ratio >= THROUGHPUT_GOAL,
      note: result.ratio < THROUGHPUT_GOAL ? limits(e2e, direction) : undefined,
    });
  }

  {
    const goal = `acknowledgement p50 at ${LATENCY.concurrency} senders, Segment answering after ${LATENCY.segmentDelayMs} ms`;
    const target = `< ${LATENCY_GOAL}x naive p50`;
    const bridge = e2e.latency.find((p) => p.worker === "bridge");
    const naive = e2e.latency.find((p) => p.worker === "naive");
    if (!usable(bridge)) goals.push(notMeasured(goal, target, `the bridge ${failure(bridge)}`));
    else if (!usable(naive)) goals.push(notMeasured(goal, target, `the naive forwarder ${failure(naive)}`));
    else {
      const ratio = bridge.p50Ms / naive.p50Ms;
      goals.push({
        goal,
        target,
        measured: `${fmt(ratio)}x (p50 ${fmt(bridge.p50Ms)} vs ${fmt(naive.p50Ms)} ms; p99 ${fmt(bridge.p99Ms)} vs ${fmt(naive.p99Ms)} ms)`,
        met: ratio < LATENCY_GOAL,
        note:
          ratio >= LATENCY_GOAL
            ? e2e.queueBound
              ? "the acknowledgement does not wait for Segment with a queue bound: see the isolate profile"
              : "no queue bound: the acknowledgement waits for Segment"
            : undefined,
      });
    }
  }

  for (const direction of ["inbound", "outbound"] as const) {
    const goal = `mapping share of the bridge's isolate CPU, ${direction} (profile at ${GOAL_SENDERS} senders)`;
    const target = `< ${MAPPING_SHARE_GOAL * 100} %`;
    const profile = profileOf(e2e, "bridge", direction);
    if (!profile) goals.push(notMeasured(goal, target, "no profile"));
    else if (profile.mappingShare === null)
      goals.push(notMeasured(goal, target, "no mapping function in the profile (renamed? see MAPPING_FUNCTIONS)"));
    else
      goals.push({
        goal,
        target,
        measured: `${percent(profile.mappingShare)} (${fmt(profile.mappingCpuMsPerEvent ?? 0, 3)} of ${fmt(profile.isolateCpuMsPerEvent)} ms per event)`,
        met: profile.mappingShare < MAPPING_SHARE_GOAL,
      });
  }

  for (const direction of ["inbound", "outbound"] as const) {
    const goal = `log not among the top ${TOP_FRAMES} self-time frames, ${direction}, default sample rate`;
    const profile = profileOf(e2e, "bridge", direction);
    if (!profile) goals.push(notMeasured(goal, "absent", "no profile"));
    else {
      const rank = (frame: string) => profile.hotspots.findIndex((spot) => spot.frame === frame) + 1;
      goals.push({
        goal,
        target: "absent",
        measured:
          profile.logFramesInTop.length === 0
            ? "absent"
            : profile.logFramesInTop.map((frame) => `${frame} (#${rank(frame)})`).join(", "),
        met: profile.logFramesInTop.length === 0,
        note: `top ${TOP_FRAMES}: ${topFrames(profile.hotspots, TOP_FRAMES)}`,
      });
    }
  }

  {
    const goal = "ledger queries (D1 reads and writes) per Vero consumer batch";
    const target = `≤ ${LEDGER_QUERIES_GOAL}`;
    const { ledger } = e2e;
    if (!ledger.bound) goals.push(notMeasured(goal, target, "wrangler.toml declares no [[d1_databases]]"));
    else if (!ledger.veroQueued)
      goals.push(
        notMeasured(
          goal,
          target,
          "wrangler.toml binds no VERO_QUEUE, so outbound makes no consumer batches; the cost points with the Vero queue count the consumer's D1 statements per event",
        ),
      );
    else if (!ledger.queriesPerBatch)
      goals.push(
        notMeasured(
          goal,
          target,
          `${ledger.batches} "vero batch" lines, none with a d1Statements or ledgerQueries field`,
        ),
      );
    else
      goals.push({
        goal,
        target,
        measured: `max ${ledger.queriesPerBatch.max}, mean ${fmt(ledger.queriesPerBatch.mean)} over ${ledger.queriesPerBatch.lines} batches`,
        met: ledger.queriesPerBatch.max <= LEDGER_QUERIES_GOAL,
        note: ledger.messagesPerBatch
          ? `batches of ${fmt(ledger.messagesPerBatch.mean, 1)} messages on average, ${ledger.messagesPerBatch.max} at most`
          : undefined,
      });
  }

  const burst = e2e.bursts.find((b) => b.worker === "bridge");
  if (burst) {
    const ok = burst.ok > 0 && burst.failed === 0;
    goals.push({
      goal: `Segment requests per inbound event (burst of ${BURST_EVENTS})`,
      target: `≤ ${BURST_GOAL}`,
      measured: ok ? `${fmt(burst.segmentRequestsPerEvent, 3)} (${burst.segmentRequests} requests)` : "not measured",
      met: ok ? burst.segmentRequestsPerEvent <= BURST_GOAL : null,
      note: !ok
        ? `the bridge acknowledged ${burst.ok} of ${burst.events}`
        : burst.segmentRequestsPerEvent > BURST_GOAL
          ? `${fmt(burst.segmentRequestsPerEvent / BURST_GOAL, 1)}x over; ${burst.queueBound ? "a queue is bound, see its batch settings" : "no queue bound (wrangler.toml has no [[queues.producers]]): one Segment request per webhook, as delivered inline"}`
          : burst.complete
            ? undefined
            : "delivery timed out before every event arrived",
    });
  }
}

if (failed(size)) {
  goals.push(notMeasured("Worker bundle, gzip", "≤ 108 KiB", size.error));
} else {
  const { gzipBytes, composition } = size.bridge;
  goals.push({
    goal: "Worker bundle, gzip",
    target: "≤ 108 KiB",
    measured: `${fmt(gzipBytes / 1024, 1)} KiB`,
    met: gzipBytes <= SIZE_GOAL_BYTES,
    note:
      gzipBytes > SIZE_GOAL_BYTES
        ? `${fmt(gzipBytes / SIZE_GOAL_BYTES, 2)}x over; bundle made of ${composition
            .slice(0, 3)
            .map((part) => `${part.source} ${Math.round(part.share * 100)}%`)
            .join(", ")} (unminified bytes)`
        : undefined,
  });
}

goals.push(...drainGoals(drain));
goals.push(...costGoals(cost));

// --- report -------------------------------------------------------------------------------------

const totalSeconds = Math.round((performance.now() - started) / 100) / 10;
const na = "not measured";
const tables: { title: string; header: string[]; rows: Cell[][] }[] = [];
const label = (worker: WorkerName) => WORKER_LABELS[worker];

if (!failed(e2e)) {
  tables.push({
    title: `Throughput at ${GOAL_SENDERS} senders against the naive forwarder of the same direction`,
    header: ["direction", "worker", "events/s", "naive events/s", "ratio", "p50 ms", "naive p50 ms"],
    rows: (["inbound", "outbound"] as const).flatMap((direction) =>
      (["bridge", "bridgeFullLog", "bridgeInline", "bridgeInlineNoLedger"] as const)
        .filter((worker) => e2e.sweeps.some((s) => s.worker === worker && s.direction === direction))
        .map((worker): Cell[] => {
          const result = versusNaive(e2e, worker, direction, GOAL_SENDERS);
          return "error" in result
            ? [direction, label(worker), na, na, na, na, result.error]
            : [
                direction,
                label(worker),
                result.bridge.eventsPerSecond,
                result.naive.eventsPerSecond,
                `${fmt(result.ratio)}x`,
                result.bridge.p50Ms,
                result.naive.p50Ms,
              ];
        }),
    ),
  });
  tables.push({
    title: `Acknowledgement latency, Segment stand-in answering after ${LATENCY.segmentDelayMs} ms (${LATENCY.concurrency} senders)`,
    header: ["worker", "p50 ms", "p99 ms", "events/s", "ok", "failed"],
    rows: e2e.latency.map((p) => [label(p.worker), p.p50Ms, p.p99Ms, p.eventsPerSecond, p.ok, p.failed]),
  });
  tables.push({
    title: `The Worker's isolate under load (CPU profile through wrangler's inspector, ${GOAL_SENDERS} senders, run again)`,
    header: [
      "worker",
      "direction",
      "events/s (profiled)",
      "isolate busy",
      "isolate CPU ms/event",
      "mapping share (inclusive)",
      "mapping ms/event",
      `top ${TOP_FRAMES} self time`,
      "log in top?",
    ],
    rows: e2e.profiles.map((p) => [
      label(p.worker),
      p.direction,
      p.eventsPerSecond,
      `${Math.round(p.isolateBusyShare * 100)}%`,
      p.isolateCpuMsPerEvent,
      p.mappingShare === null ? (p.worker === "naive" ? "" : na) : percent(p.mappingShare),
      p.mappingCpuMsPerEvent ?? "",
      topFrames(p.hotspots, TOP_FRAMES),
      p.logFramesInTop.length > 0 ? "yes" : "no",
    ]),
  });
  const ledger = e2e.ledger;
  const shipped = pointAt(e2e, "bridge", "outbound", GOAL_SENDERS);
  const withLedger = pointAt(e2e, "bridgeInline", "outbound", GOAL_SENDERS);
  const withoutLedger = pointAt(e2e, "bridgeInlineNoLedger", "outbound", GOAL_SENDERS);
  tables.push({
    title: `Delivery ledger (D1): outbound at ${GOAL_SENDERS} senders inline with and without it (queue mode needs it for its dead letters), and its queries per Vero consumer batch`,
    header: ["measure", "value"],
    rows: [
      ["D1 database in wrangler.toml", ledger.bound ? "yes" : "no"],
      [
        `outbound events/s, ${ledger.veroQueued ? "queue mode" : "wrangler.toml as shipped"} (ledger bound)`,
        usable(shipped) ? shipped.eventsPerSecond : na,
      ],
      ["outbound events/s, inline, ledger bound", ledger.bound && usable(withLedger) ? withLedger.eventsPerSecond : na],
      ["outbound events/s, inline, without the ledger", usable(withoutLedger) ? withoutLedger.eventsPerSecond : na],
      [
        "with / without",
        ledger.bound && usable(withLedger) && usable(withoutLedger)
          ? `${fmt(withLedger.eventsPerSecond / withoutLedger.eventsPerSecond)}x`
          : na,
      ],
      ["vero batch lines read", ledger.batches],
      [
        "ledger queries per batch (mean / max)",
        ledger.queriesPerBatch ? `${fmt(ledger.queriesPerBatch.mean)} / ${ledger.queriesPerBatch.max}` : na,
      ],
      [
        "messages per batch (mean / max)",
        ledger.messagesPerBatch ? `${fmt(ledger.messagesPerBatch.mean, 1)} / ${ledger.messagesPerBatch.max}` : na,
      ],
      ...e2e.skipped.map((reason): Cell[] => ["left out", reason]),
    ],
  });
  tables.push({
    title: `End to end under wrangler dev (${seconds} s per point; upstream requests counted at the stand-ins)`,
    header: [
      "worker",
      "direction",
      "senders",
      "events/s",
      "p50 ms",
      "p99 ms",
      "ok",
      "failed",
      "upstream req/event",
      "machine busy",
    ],
    rows: e2e.points.map((p) => [
      label(p.worker),
      p.direction,
      p.concurrency,
      p.eventsPerSecond,
      p.p50Ms,
      p.p99Ms,
      p.ok,
      p.failed,
      p.delivered ? p.upstreamRequestsPerEvent : `${p.upstreamRequestsPerEvent} (not all delivered)`,
      p.cpu.machineBusy === undefined ? "" : `${Math.round(p.cpu.machineBusy * 100)}%`,
    ]),
  });
  tables.push({
    title: `Burst: ${BURST_EVENTS} webhooks from 32 senders${e2e.queueBound ? " (queue bound)" : " (no queue bound: inline delivery)"}`,
    header: ["worker", "acked", "Segment requests", "messages", "requests/event", "drain ms", "delivered events/s"],
    rows: e2e.bursts.map((b) => [
      label(b.worker),
      b.ok,
      b.segmentRequests,
      b.segmentMessages,
      b.segmentRequestsPerEvent,
      b.drainMs,
      b.deliveredEventsPerSecond,
    ]),
  });
}
if (!failed(mapping)) {
  tables.push({
    title:
      "Mapping cost in process (tinybench, validation included, median ns per event over the fixture mix; no goal of its own)",
    header: ["direction", "mapping ns/event", "JSON round trip ns/event", "ratio", "top self time in process"],
    rows: (["inbound", "outbound"] as const).map((direction) => {
      const result = mapping[direction];
      return result.measured
        ? [
            direction,
            result.mapNsPerEvent,
            result.referenceNsPerEvent,
            `${fmt(result.ratio)}x`,
            topFrames(result.hotspots, 3),
          ]
        : [direction, na, na, na, result.reason];
    }),
  });
}
if (!failed(size)) {
  tables.push({
    title: "Worker size (wrangler deploy --dry-run) and cold start",
    header: [
      "worker",
      "bytes",
      "gzip bytes",
      "gzip KiB",
      "gzip KiB unminified",
      "workerd cold start ms",
      "V8 import ms",
    ],
    rows: (["bridge", "naive"] as const).map((name) => {
      const s = size[name];
      return [
        name,
        s.bytes,
        s.gzipBytes,
        Math.round((s.gzipBytes / 1024) * 10) / 10,
        Math.round((s.unminifiedGzipBytes / 1024) * 10) / 10,
        s.coldStart.workerdMs,
        s.coldStart.v8ImportMs,
      ];
    }),
  });
  tables.push({
    title: "What the bridge's bundle is made of (unminified bytes)",
    header: ["source", "bytes", "share"],
    rows: size.bridge.composition.slice(0, 6).map((part) => [part.source, part.bytes, `${fmt(part.share * 100, 1)}%`]),
  });
}
const goalRows = goals.map(goalCells);

log("");
// The drain table is written to its own section of the README (drain-report.ts), so it is not among `tables`.
for (const table of [
  ...tables,
  ...(failed(drain) ? [] : [drainTable(drain)]),
  ...(failed(cost) ? [] : [costTable(cost)]),
])
  log(`${table.title}\n${renderTable(table.header, table.rows)}\n`);
log(`Goals\n${renderTable(GOAL_HEADER, goalRows)}\n`);
log(
  `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}, wrangler ${machine.wrangler}`,
);
log(`Total: ${totalSeconds} s`);

await mkdir(OUT, { recursive: true });
const generatedAt = new Date().toISOString();
const results = {
  generatedAt,
  totalSeconds,
  quick: QUICK,
  machine,
  goals,
  mapping,
  endToEnd: e2e,
  size,
  drain,
  cost,
};
await writeFile(join(OUT, "results.json"), `${JSON.stringify(results, null, 2)}\n`);

/** The chart's lines: each sweep, inbound in blue, outbound in orange, the naive forwarders in grey. */
const CHART: { worker: WorkerName; direction: Direction; color: string; dash?: string }[] = [
  // In the legend's two columns: inbound on the left, outbound on the right.
  { worker: "bridge", direction: "inbound", color: "#2563eb" },
  { worker: "bridge", direction: "outbound", color: "#ea580c" },
  { worker: "bridgeFullLog", direction: "inbound", color: "#93c5fd", dash: "6 4" },
  { worker: "bridgeFullLog", direction: "outbound", color: "#fdba74", dash: "6 4" },
  { worker: "naive", direction: "inbound", color: "#6b7280" },
  { worker: "naive", direction: "outbound", color: "#6b7280", dash: "2 3" },
];

if (!failed(e2e)) {
  const drawn = CHART.filter(({ worker, direction }) =>
    e2e.sweeps.some((s) => s.worker === worker && s.direction === direction),
  );
  const xs = [
    ...new Set(
      drawn.flatMap(
        ({ worker, direction }) =>
          e2e.sweeps.find((s) => s.worker === worker && s.direction === direction)?.concurrencies ?? [],
      ),
    ),
  ].sort((a, b) => a - b);
  const series: Series[] = drawn.map(({ worker, direction, color, dash }) => ({
    name: `${direction}: ${worker === "naive" ? `naive ${direction} forwarder` : label(worker)}`,
    color,
    dash,
    points: xs.map((x) => {
      const p = pointAt(e2e, worker, direction, x);
      return { x, y: usable(p) ? p.eventsPerSecond : Number.NaN };
    }),
  }));
  await writeFile(
    join(OUT, "throughput.svg"),
    lineChartSvg({
      title: "Events per second under wrangler dev",
      subtitle: `${machine.cores} × ${machine.cpu}, ${generatedAt.slice(0, 10)}, ${seconds} s per point; bridge at the default log sample rate and at 1`,
      xLabel: "concurrent senders",
      yLabel: "events acknowledged per second",
      xs,
      series,
      width: 720,
      legendColumns: 2,
    }),
  );
}

const START = "<!-- results:start -->";
const END = "<!-- results:end -->";
const section = [
  START,
  "",
  runLine("npm run bench", generatedAt, totalSeconds),
  "",
  "### Goals",
  "",
  renderMarkdownTable(GOAL_HEADER, goalRows),
  "",
  ...tables.flatMap((table) => [`### ${table.title}`, "", renderMarkdownTable(table.header, table.rows), ""]),
  failed(e2e) ? "" : "![Inbound and outbound events per second against concurrency](throughput.svg)\n",
  END,
].join("\n");
const readme = await readFile(readmePath, "utf8").catch(() => "");
const target = QUICK ? join(OUT, "README.md") : readmePath;
if (readme.includes(START) && readme.includes(END)) {
  await writeFile(
    target,
    readme.slice(0, readme.indexOf(START)) + section + readme.slice(readme.indexOf(END) + END.length),
  );
  if (!failed(drain))
    await writeDrainSection(target, target, drain, runLine("npm run bench", generatedAt, totalSeconds));
  if (!failed(cost)) await writeCostSection(target, target, cost, runLine("npm run bench", generatedAt, totalSeconds));
  await formatReadme(target);
}
const written = QUICK ? "bench/.out/" : "bench/";
log(`wrote ${written}results.json${failed(e2e) ? "" : `, ${written}throughput.svg`} and ${written}README.md`);
