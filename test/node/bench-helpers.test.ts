/** The benchmarks' pure helpers; the benchmarks themselves never run in `npm test`. */
import { describe, expect, it } from "vitest";
import { isLogFrame } from "../../bench/e2e.ts";
import { functionOf, hotspots, inclusiveShare } from "../../bench/lib/profile.ts";
import { percentile, summarize } from "../../bench/lib/stats.ts";
import { lineChartSvg, niceCeiling } from "../../bench/lib/svg.ts";
import { renderMarkdownTable, renderTable } from "../../bench/lib/table.ts";
import { hasTables, relocated, withoutTables } from "../../bench/lib/worker-config.ts";
import { fieldStats, logLine } from "../../bench/lib/worker-log.ts";
import { bundleComposition } from "../../bench/size.ts";

describe("percentile", () => {
  const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);

  it("takes the nearest rank, so every percentile is a value some request saw", () => {
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile(sorted, 100)).toBe(100);
    expect(percentile(sorted, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([1, 2, 3], 50)).toBe(2);
  });

  it("is NaN, not zero, without samples", () => {
    expect(percentile([], 50)).toBeNaN();
    expect(summarize([]).p99).toBeNaN();
  });

  it("summarizes unsorted samples", () => {
    expect(summarize([5, 1, 4, 2, 3])).toEqual({ count: 5, mean: 3, p50: 3, p99: 5, max: 5 });
  });
});

describe("lineChartSvg", () => {
  const svg = lineChartSvg({
    title: "Inbound <events> & more",
    xLabel: "senders",
    yLabel: "events/s",
    xs: [1, 8, 32, 128],
    series: [
      { name: "bridge", color: "#2563eb", points: [1, 8, 32, 128].map((x) => ({ x, y: x * 10 })) },
      {
        name: "naive",
        color: "#999999",
        points: [
          { x: 1, y: 5 },
          { x: 8, y: Number.NaN },
        ],
      },
    ],
  });

  it("is one SVG document with escaped text", () => {
    expect(svg.startsWith("<svg xmlns=")).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg).toContain("Inbound &lt;events&gt; &amp; more");
    expect(svg).not.toContain("<events>");
  });

  it("draws a point per measured value and leaves unmeasured ones out", () => {
    expect(svg.match(/<circle /g)).toHaveLength(5);
    expect(svg.match(/<path /g)).toHaveLength(1);
    expect(svg).not.toContain("NaN");
  });

  it("dashes a series that asks for it, in the line and in its legend, and gives the legend a row per columns", () => {
    const series = (name: string, dash?: string) => ({
      name,
      color: "#000000",
      dash,
      points: [1, 8].map((x) => ({ x, y: x })),
    });
    const chart = lineChartSvg({
      title: "t",
      xLabel: "x",
      yLabel: "y",
      xs: [1, 8],
      legendColumns: 2,
      series: [series("a"), series("b", "6 4"), series("c")],
    });
    expect(chart.match(/stroke-dasharray="6 4"/g)).toHaveLength(2);
    expect(chart).toContain('height="418"');
    expect(svg).toContain('height="400"');
  });

  it("ends the y axis on a round number", () => {
    expect(niceCeiling(1280)).toBe(2000);
    expect(niceCeiling(230)).toBe(250);
    expect(niceCeiling(0)).toBe(1);
    expect(svg).toContain(">2000</text>");
  });
});

describe("tables", () => {
  it("right-aligns numbers and left-aligns text", () => {
    const lines = renderTable(
      ["name", "n"],
      [
        ["a", 1000],
        ["bb", 5],
      ],
    ).split("\n");
    expect(lines).toEqual(["name      n", "----  -----", "a     1,000", "bb        5"]);
  });

  it("escapes pipes in Markdown cells", () => {
    expect(renderMarkdownTable(["a"], [["x|y"]])).toBe("| a |\n|---|\n| x\\|y |");
  });
});

describe("bundleComposition", () => {
  it("sums bytes under esbuild's file markers, per package", () => {
    const code = [
      "var x = 1;",
      "// node_modules/zod/v4/core.js",
      "aaaa",
      "// node_modules/@segment/analytics-core/dist/index.js",
      "bb",
      "// node_modules/zod/v4/classic.js",
      "cc",
      "// src/inbound/map.ts",
      "d",
    ].join("\n");
    const parts = Object.fromEntries(bundleComposition(code).map((part) => [part.source, part.bytes]));
    expect(parts.zod).toBe(
      "// node_modules/zod/v4/core.js\naaaa\n".length + "// node_modules/zod/v4/classic.js\ncc\n".length,
    );
    expect(parts["@segment/analytics-core"]).toBeGreaterThan(0);
    expect(parts["src/inbound"]).toBeGreaterThan(0);
    expect(parts["(wrangler/esbuild runtime)"]).toBe("var x = 1;\n".length);
  });

  it("finds the package behind a symlinked node_modules", () => {
    const code = "// ../../elsewhere/node_modules/zod/v4/core.js\nx\n// src/index.ts\ny";
    expect(bundleComposition(code).map((part) => part.source)).toEqual(["zod", "src"]);
  });
});

describe("hotspots", () => {
  it("ranks functions by self samples, leaving idle time out", () => {
    const frame = (functionName: string, url = "") => ({ functionName, url, lineNumber: 0 });
    const spots = hotspots([
      { id: 1, callFrame: frame("(idle)"), hitCount: 100 },
      { id: 2, callFrame: frame("hash", "node:crypto"), hitCount: 3 },
      { id: 3, callFrame: frame("parse", "node:zod"), hitCount: 1 },
      { id: 4, callFrame: frame("hash", "node:crypto"), hitCount: 4 },
    ]);
    expect(spots).toEqual([
      { frame: "hash (node:crypto:1)", selfShare: 0.875 },
      { frame: "parse (node:zod:1)", selfShare: 0.125 },
    ]);
  });
});

describe("inclusiveShare", () => {
  const frame = (functionName: string) => ({ functionName, url: "index.js", lineNumber: 0 });
  // root -> handle -> mapVeroWebhook -> parseVeroWebhook; root -> log; idle beside.
  const nodes = [
    { id: 1, callFrame: frame("(root)"), hitCount: 0, children: [2, 5, 6] },
    { id: 2, callFrame: frame("handle"), hitCount: 10, children: [3] },
    { id: 3, callFrame: frame("mapVeroWebhook"), hitCount: 5, children: [4] },
    { id: 4, callFrame: frame("parseVeroWebhook"), hitCount: 15 },
    { id: 5, callFrame: frame("log"), hitCount: 70 },
    { id: 6, callFrame: frame("(idle)"), hitCount: 900 },
  ];
  const mapping = (name: string) => name === "mapVeroWebhook" || name === "parseVeroWebhook";

  it("counts every sample under a matching frame once, over the busy samples only", () => {
    expect(inclusiveShare(nodes, mapping)).toBe(0.2);
  });

  it("is undefined, not zero, when no frame matches (a renamed function is not measured)", () => {
    expect(inclusiveShare(nodes, (name) => name === "mapSegmentEvent")).toBeUndefined();
  });

  it("names a hotspot's function without its location", () => {
    expect(functionOf("log (index.js:1999)")).toBe("log");
    expect(functionOf("(garbage collector)")).toBe("(garbage collector)");
  });
});

describe("isLogFrame", () => {
  it("recognises the logger and the console, however a change names the logger", () => {
    for (const name of ["log", "log2", "console.log", "logSampled", "writeLog"]) expect(isLogFrame(name)).toBe(true);
  });

  it("leaves other frames alone", () => {
    for (const name of ["fetch", "mapVeroWebhook", "catalog", "(garbage collector)", "dialogue"])
      expect(isLogFrame(name)).toBe(false);
  });
});

describe("wrangler.toml helpers", () => {
  const toml = [
    'name = "x"',
    'main = "src/index.ts"',
    "",
    "[[d1_databases]]",
    'binding = "LEDGER"',
    'migrations_dir = "migrations"',
    "",
    "# Durable delivery.",
    "[[queues.producers]]",
    'binding = "SEGMENT_QUEUE"',
  ].join("\n");

  it("finds a table by its header", () => {
    expect(hasTables(toml, "d1_databases")).toBe(true);
    expect(hasTables(toml, "queues.producers")).toBe(true);
    expect(hasTables(toml, "queues.consumers")).toBe(false);
  });

  it("removes a table up to the next header and keeps the rest", () => {
    const stripped = withoutTables(toml, "d1_databases");
    expect(hasTables(stripped, "d1_databases")).toBe(false);
    expect(stripped).not.toContain("LEDGER");
    expect(stripped).toContain('binding = "SEGMENT_QUEUE"');
    expect(stripped).toContain('main = "src/index.ts"');
  });

  it("points main and the ledger's migrations at the same places from the copy's folder", () => {
    const copy = relocated(`${toml}\nmigrations_dir = "migrations"\n`, "/repo/wrangler.toml", "/repo/bench/.out");
    expect(copy).toContain('main = "../../src/index.ts"');
    expect(copy).toContain('migrations_dir = "../../migrations"');
  });
});

describe("worker log lines", () => {
  it("reads a JSON log line out of wrangler's output, and only with the message asked for", () => {
    const line = '{"level":"info","msg":"vero batch","messages":25,"ledgerQueries":2}';
    expect(logLine(line, "vero batch")).toEqual({ level: "info", msg: "vero batch", messages: 25, ledgerQueries: 2 });
    expect(logLine(`[wrangler:info] ${line}`, "vero batch")?.messages).toBe(25);
    expect(logLine(line, "vero call")).toBeUndefined();
    expect(logLine('{"msg":"vero batch"', "vero batch")).toBeUndefined();
    expect(logLine('QUEUE "vero batch" 25/25', "vero batch")).toBeUndefined();
    // A console.warn, as wrangler dev prints it: a yellow tag, then the line in bold.
    const warning = `\u001b[33m▲ \u001b[43;33m[\u001b[43;30mWARNING\u001b[43;33m]\u001b[0m \u001b[1m${line}\u001b[0m`;
    expect(logLine(warning, "vero batch")?.messages).toBe(25);
  });

  it("summarises a numeric field over the lines that carry it", () => {
    const lines = [{ ledgerQueries: 2 }, { ledgerQueries: 1 }, { other: 3 }, { ledgerQueries: "2" }];
    expect(fieldStats(lines, "ledgerQueries")).toEqual({ lines: 2, mean: 1.5, max: 2 });
    expect(fieldStats(lines, "absent")).toBeUndefined();
  });
});
