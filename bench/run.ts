/**
 * `npm run bench`: every figure issue 7 asks for, in one run, measured on
 * this machine. Prints a table, writes bench/results.json and
 * bench/throughput.svg, and rewrites the results section of bench/README.md.
 *
 * BENCH_SECONDS sets the measurement window per end-to-end point (default 4).
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { cpus, freemem, release, totalmem, type } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { type EndToEnd, measureEndToEnd } from "./e2e.ts";
import { lineChartSvg } from "./lib/svg.ts";
import { type Cell, renderMarkdownTable, renderTable } from "./lib/table.ts";
import { MAPPING_GOAL_RATIO, type MappingMeasurement, measureMapping } from "./mapping.ts";
import { type BundleMeasurement, type ColdStart, measureBundle, measureColdStart } from "./size.ts";

const ROOT = join(import.meta.dirname, "..");
const BENCH = import.meta.dirname;
const CONCURRENCIES = [1, 8, 32, 128];
const BURST_EVENTS = 1000;
const SIZE_GOAL_BYTES = 64 * 1024;
const BURST_GOAL = 0.05;
const seconds = Number(process.env.BENCH_SECONDS ?? 4);

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

// --- measure ------------------------------------------------------------------------------------

interface SizeResult {
  bridge: Omit<BundleMeasurement, "file" | "dispose"> & { coldStart: ColdStart };
  naive: Omit<BundleMeasurement, "file" | "dispose" | "composition"> & { coldStart: ColdStart };
}

const size = await step("bundle size and cold start", async (): Promise<SizeResult> => {
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

const mapping = await step("mapping cost (tinybench)", () => measureMapping(1000));

const e2e = await step("end to end under wrangler dev", () =>
  measureEndToEnd({ concurrencies: CONCURRENCIES, durationMs: seconds * 1000, burstEvents: BURST_EVENTS, log }),
);

// --- judge --------------------------------------------------------------------------------------

interface Goal {
  goal: string;
  target: string;
  measured: string;
  /** null: not measured. */
  met: boolean | null;
  note?: string;
}

const goals: Goal[] = [];
const fmt = (value: number, digits = 2) => value.toLocaleString("en-US", { maximumFractionDigits: digits });

for (const direction of ["inbound", "outbound"] as const) {
  const label = direction === "inbound" ? "Vero webhook to Segment message" : "Segment event to Vero requests";
  if (failed(mapping)) {
    goals.push({
      goal: `mapping: ${label}`,
      target: `≤ ${MAPPING_GOAL_RATIO}x reference`,
      measured: "not measured",
      met: null,
      note: mapping.error,
    });
    continue;
  }
  const result: MappingMeasurement = mapping[direction];
  goals.push(
    result.measured
      ? {
          goal: `mapping: ${label}`,
          target: `≤ ${MAPPING_GOAL_RATIO}x reference`,
          measured: `${fmt(result.ratio)}x (${fmt(result.mapNsPerEvent, 0)} ns vs ${fmt(result.referenceNsPerEvent, 0)} ns)`,
          met: result.ratio <= MAPPING_GOAL_RATIO,
          note:
            result.ratio > MAPPING_GOAL_RATIO
              ? `${fmt(result.ratio / MAPPING_GOAL_RATIO)}x over; top of profile: ${(result.hotspots ?? [])
                  .slice(0, 3)
                  .map((spot) => `${spot.frame} ${Math.round(spot.selfShare * 100)}%`)
                  .join(", ")}`
              : undefined,
        }
      : {
          goal: `mapping: ${label}`,
          target: `≤ ${MAPPING_GOAL_RATIO}x reference`,
          measured: "not measured",
          met: null,
          note: result.reason,
        },
  );
}

const pointAt = (run: EndToEnd, target: "bridge" | "naive", direction: "inbound" | "outbound", concurrency: number) =>
  run.points.find((p) => p.target === target && p.direction === direction && p.concurrency === concurrency);

/** What the profiles and CPU meters of the run say about a throughput shortfall. */
function limits(run: EndToEnd, direction: "inbound" | "outbound"): string {
  const mine = run.profiles.find((p) => p.target === "bridge" && p.direction === direction);
  const naive = run.profiles.find((p) => p.target === "naive");
  const point = pointAt(run, "bridge", direction, 32);
  const parts = [
    mine && naive
      ? `isolate CPU ${fmt(mine.isolateCpuMsPerEvent)} ms/event vs naive ${fmt(naive.isolateCpuMsPerEvent)} (busy ${Math.round(mine.isolateBusyShare * 100)}% vs ${Math.round(naive.isolateBusyShare * 100)}%)`
      : undefined,
    point?.cpu.machineBusy !== undefined ? `machine ${Math.round(point.cpu.machineBusy * 100)}% busy` : undefined,
    mine?.hotspots[0]
      ? `top of profile: ${mine.hotspots
          .slice(0, 2)
          .map((h) => `${h.frame} ${Math.round(h.selfShare * 100)}%`)
          .join(", ")}`
      : undefined,
    run.queueBound ? undefined : "no queue bound: the acknowledgement waits for the upstream call",
  ];
  return parts.filter(Boolean).join("; ");
}

if (failed(e2e)) {
  goals.push({
    goal: "throughput vs naive forwarder",
    target: "≥ 1x",
    measured: "not measured",
    met: null,
    note: e2e.error,
  });
  goals.push({
    goal: "Segment requests per inbound event (burst)",
    target: `≤ ${BURST_GOAL}`,
    measured: "not measured",
    met: null,
    note: e2e.error,
  });
} else {
  const naive = pointAt(e2e, "naive", "inbound", 32);
  for (const direction of ["inbound", "outbound"] as const) {
    const bridge = pointAt(e2e, "bridge", direction, 32);
    if (!bridge || !naive) continue;
    const usable = bridge.failed === 0 && bridge.ok > 0;
    const ratio = bridge.eventsPerSecond / naive.eventsPerSecond;
    goals.push({
      goal: `${direction} throughput at 32 senders vs naive forwarder`,
      target: "≥ 1x",
      measured: usable
        ? `${fmt(ratio)}x (${fmt(bridge.eventsPerSecond, 1)} vs ${fmt(naive.eventsPerSecond, 1)} events/s)`
        : "not measured",
      met: usable ? ratio >= 1 : null,
      note: usable
        ? ratio < 1
          ? `${fmt((1 - ratio) * 100, 0)}% short; ${limits(e2e, direction)}`
          : undefined
        : `the bridge answered ${JSON.stringify(bridge.statuses)}: ${bridge.firstFailure ?? ""}`,
    });
  }
  const burst = e2e.bursts.find((b) => b.target === "bridge");
  if (burst) {
    const usable = burst.ok > 0 && burst.failed === 0;
    goals.push({
      goal: `Segment requests per inbound event (burst of ${BURST_EVENTS})`,
      target: `≤ ${BURST_GOAL}`,
      measured: usable
        ? `${fmt(burst.segmentRequestsPerEvent, 3)} (${burst.segmentRequests} requests)`
        : "not measured",
      met: usable ? burst.segmentRequestsPerEvent <= BURST_GOAL : null,
      note: !usable
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
  goals.push({
    goal: "Worker bundle, gzip",
    target: "≤ 64 KiB",
    measured: "not measured",
    met: null,
    note: size.error,
  });
} else {
  const { gzipBytes, composition } = size.bridge;
  goals.push({
    goal: "Worker bundle, gzip",
    target: "≤ 64 KiB",
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

// --- report -------------------------------------------------------------------------------------

const totalSeconds = Math.round((performance.now() - started) / 100) / 10;
const na = "not measured";
const tables: { title: string; header: string[]; rows: Cell[][] }[] = [];

if (!failed(mapping)) {
  tables.push({
    title: "Mapping cost (in process, validation included, median ns per event over the fixture mix)",
    header: ["direction", "mapping ns/event", "JSON round trip ns/event", "ratio"],
    rows: (["inbound", "outbound"] as const).map((direction) => {
      const result = mapping[direction];
      return result.measured
        ? [direction, result.mapNsPerEvent, result.referenceNsPerEvent, `${fmt(result.ratio)}x`]
        : [direction, na, na, result.reason];
    }),
  });
}
if (!failed(e2e)) {
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
      p.target,
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
    title: "The Worker's isolate under load (CPU profile through wrangler's inspector, same window, run again)",
    header: [
      "worker",
      "direction",
      "senders",
      "events/s (profiled)",
      "isolate busy",
      "isolate CPU ms/event",
      "top self time",
    ],
    rows: e2e.profiles.map((p) => [
      p.target,
      p.direction,
      p.concurrency,
      p.eventsPerSecond,
      `${Math.round(p.isolateBusyShare * 100)}%`,
      p.isolateCpuMsPerEvent,
      p.hotspots
        .slice(0, 3)
        .map((h) => `${h.frame} ${Math.round(h.selfShare * 100)}%`)
        .join("; "),
    ]),
  });
  tables.push({
    title: `Burst: ${BURST_EVENTS} webhooks from 32 senders${e2e.queueBound ? " (queue bound)" : " (no queue bound: inline delivery)"}`,
    header: ["worker", "acked", "Segment requests", "messages", "requests/event", "drain ms", "delivered events/s"],
    rows: e2e.bursts.map((b) => [
      b.target,
      b.ok,
      b.segmentRequests,
      b.segmentMessages,
      b.segmentRequestsPerEvent,
      b.drainMs,
      b.deliveredEventsPerSecond,
    ]),
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
const goalRows = goals.map((g) => [
  g.goal,
  g.target,
  g.measured,
  g.met === null ? "not measured" : g.met ? "met" : "MISSED",
  g.note ?? "",
]);
const goalHeader = ["goal", "target", "measured", "verdict", "why"];

log("");
for (const table of tables) log(`${table.title}\n${renderTable(table.header, table.rows)}\n`);
log(`Goals\n${renderTable(goalHeader, goalRows)}\n`);
log(
  `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}, wrangler ${machine.wrangler}`,
);
log(`Total: ${totalSeconds} s`);

const generatedAt = new Date().toISOString();
const results = {
  generatedAt,
  totalSeconds,
  machine,
  goals,
  mapping,
  endToEnd: e2e,
  size,
};
await writeFile(join(BENCH, "results.json"), `${JSON.stringify(results, null, 2)}\n`);

if (!failed(e2e)) {
  const series = (target: "bridge" | "naive", name: string, color: string) => ({
    name,
    color,
    points: e2e.concurrencies.map((x) => {
      const p = pointAt(e2e, target, "inbound", x);
      return { x, y: p && p.failed === 0 ? p.eventsPerSecond : Number.NaN };
    }),
  });
  await writeFile(
    join(BENCH, "throughput.svg"),
    lineChartSvg({
      title: "Inbound events per second under wrangler dev",
      subtitle: `${machine.cores} × ${machine.cpu}, ${generatedAt.slice(0, 10)}, ${seconds} s per point`,
      xLabel: "concurrent senders",
      yLabel: "events acknowledged per second",
      xs: e2e.concurrencies,
      series: [series("bridge", "vero-segment-bridge", "#2563eb"), series("naive", "naive forwarder", "#9ca3af")],
    }),
  );
}

const readmePath = join(BENCH, "README.md");
const readme = await readFile(readmePath, "utf8").catch(() => "");
const START = "<!-- results:start -->";
const END = "<!-- results:end -->";
if (readme.includes(START) && readme.includes(END)) {
  const section = [
    START,
    "",
    `Generated by \`npm run bench\` on ${generatedAt} in ${totalSeconds} s, on ${machine.cores} × ${machine.cpu}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}, wrangler ${machine.wrangler}, workerd ${machine.workerd}.`,
    "",
    "### Goals",
    "",
    renderMarkdownTable(goalHeader, goalRows),
    "",
    ...tables.flatMap((table) => [`### ${table.title}`, "", renderMarkdownTable(table.header, table.rows), ""]),
    failed(e2e) ? "" : "![Inbound events per second against concurrency](throughput.svg)\n",
    END,
  ].join("\n");
  await writeFile(
    readmePath,
    readme.slice(0, readme.indexOf(START)) + section + readme.slice(readme.indexOf(END) + END.length),
  );
  // The repository's formatter owns Markdown too; without this, `npm run lint` would fail after every run.
  await promisify(execFile)(join(ROOT, "node_modules", ".bin", "biome"), ["format", "--write", readmePath]).catch(
    (error: unknown) => log(`biome format of bench/README.md failed: ${String(error)}`),
  );
}
log(`wrote bench/results.json${failed(e2e) ? "" : ", bench/throughput.svg"} and bench/README.md`);
