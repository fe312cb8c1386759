/**
 * Mapping cost in process: the pure functions the routes and the queue
 * consumer run, validation included, beside `JSON.parse(JSON.stringify(x))`
 * of the same payloads, the cost of touching the data once.
 *
 * The modules are imported by URL at run time rather than statically: the
 * bench keeps working (and says "not measured") while a mapping is missing,
 * and the Worker's sources stay out of the Node-side typecheck.
 */
import { Bench } from "tinybench";
import { type Fixture, segmentFixtures, veroFixtures } from "./fixtures.ts";
import { type Hotspot, profileLoop } from "./lib/profile.ts";
import { round } from "./lib/stats.ts";

export type MappingMeasurement =
  | {
      measured: true;
      /** ns per event, median over tinybench's samples, averaged over the fixture mix. */
      mapNsPerEvent: number;
      referenceNsPerEvent: number;
      ratio: number;
      fixtures: string[];
      calls: string;
      /** Where the time goes in process (the end-to-end profile judges its share of the isolate). */
      hotspots: Hotspot[];
    }
  | { measured: false; reason: string };

type Mapper = (payload: Record<string, unknown>) => unknown;

const SRC = new URL("../src/", import.meta.url);
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;

async function importSource(path: string): Promise<Record<string, unknown>> {
  const module: unknown = await import(new URL(path, SRC).href);
  if (!isRecord(module)) throw new Error(`${path} is not a module`);
  return module;
}

function fn(module: Record<string, unknown>, name: string, path: string): (...args: unknown[]) => unknown {
  const value = module[name];
  if (typeof value !== "function") throw new Error(`src/${path} exports no function ${name}`);
  return value as (...args: unknown[]) => unknown;
}

/** Vero webhook to Segment message: mapVeroWebhook validates (parseVeroWebhook) and maps in one call. */
async function inboundMapper(): Promise<{ mapper: Mapper; calls: string }> {
  const mapVeroWebhook = fn(await importSource("inbound/map.ts"), "mapVeroWebhook", "inbound/map.ts");
  const receivedAt = new Date();
  return {
    mapper: (payload) => {
      const mapped = mapVeroWebhook(payload, { receivedAt });
      if (!isRecord(mapped) || mapped.kind === "invalid") throw new Error(`fixture refused: ${JSON.stringify(mapped)}`);
      return mapped;
    },
    calls: "mapVeroWebhook(json, { receivedAt })",
  };
}

/** Segment event to Vero requests: validation (parseSegmentEvent) is a separate step in the source, so both run. */
async function outboundMapper(): Promise<{ mapper: Mapper; calls: string }> {
  const mapSegmentEvent = fn(await importSource("outbound/map.ts"), "mapSegmentEvent", "outbound/map.ts");
  const parseSegmentEvent = fn(await importSource("outbound/schema.ts"), "parseSegmentEvent", "outbound/schema.ts");
  const receivedAt = new Date();
  return {
    mapper: (payload) => {
      const parsed = parseSegmentEvent(payload);
      if (!isRecord(parsed) || parsed.ok !== true) throw new Error(`fixture refused: ${JSON.stringify(parsed)}`);
      const mapped = mapSegmentEvent(parsed.event, { receivedAt });
      if (!isRecord(mapped) || mapped.outcome !== "send")
        throw new Error(`fixture not sent: ${JSON.stringify(mapped)}`);
      return mapped;
    },
    calls: "parseSegmentEvent(json) then mapSegmentEvent(event, { receivedAt })",
  };
}

// Every task iteration goes through the whole mix this many times: a few microseconds
// per sample, so the timer's own cost (tens of ns) does not distort a sub-microsecond figure.
const ROUNDS = 10;

/** Results land here so V8 cannot drop the calls as dead code. */
let sink: unknown;

async function measure(
  load: () => Promise<{ mapper: Mapper; calls: string }>,
  fixtures: Fixture[],
  timeMs: number,
): Promise<MappingMeasurement> {
  let loaded: { mapper: Mapper; calls: string };
  try {
    loaded = await load();
    for (const fixture of fixtures) loaded.mapper(fixture.payload);
  } catch (error) {
    return { measured: false, reason: error instanceof Error ? error.message : String(error) };
  }
  const { mapper } = loaded;
  const payloads = fixtures.map((fixture) => fixture.payload);
  const perIteration = payloads.length * ROUNDS;
  const bench = new Bench({ time: timeMs, warmupTime: 100 });
  bench
    .add("map", () => {
      for (let round = 0; round < ROUNDS; round += 1) for (const payload of payloads) sink = mapper(payload);
    })
    .add("reference", () => {
      for (let round = 0; round < ROUNDS; round += 1)
        for (const payload of payloads) sink = JSON.parse(JSON.stringify(payload));
    });
  await bench.run();
  const nsPerEvent = (name: string) => {
    const result = bench.getTask(name)?.result;
    if (!result || !("latency" in result)) throw new Error(`tinybench task ${name} did not complete`);
    return (result.latency.p50 * 1e6) / perIteration;
  };
  const map = nsPerEvent("map");
  const reference = nsPerEvent("reference");
  void sink;
  const hotspots = await profileLoop(() => {
    for (const payload of payloads) sink = mapper(payload);
  }, 600);
  return {
    measured: true,
    mapNsPerEvent: round(map, 0),
    referenceNsPerEvent: round(reference, 0),
    ratio: round(map / reference, 2),
    fixtures: fixtures.map((fixture) => fixture.name),
    calls: loaded.calls,
    hotspots,
  };
}

export async function measureMapping(timeMs = 1000): Promise<{
  inbound: MappingMeasurement;
  outbound: MappingMeasurement;
}> {
  return {
    inbound: await measure(inboundMapper, await veroFixtures(), timeMs),
    outbound: await measure(outboundMapper, await segmentFixtures(), timeMs),
  };
}
