/**
 * A CPU profile of a function run in a loop, summed by function: when a
 * mapping misses its goal, this says where the time goes, measured rather
 * than guessed.
 */
import { Session } from "node:inspector/promises";
import { relative } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

export interface Hotspot {
  /** `function (file:line)`, file relative to the repository. */
  frame: string;
  /** Share of the samples in which this function was on top of the stack. */
  selfShare: number;
}

export interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function frameName(node: CpuNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  if (!url) return functionName || "(native)";
  const file = url.startsWith("file://") ? relative(ROOT, fileURLToPath(url)) : url;
  return `${functionName || "(anonymous)"} (${file}:${lineNumber + 1})`;
}

/** Self time per function, largest first; idle and GC kept as their own rows, they are part of the cost. */
export function hotspots(nodes: readonly CpuNode[], top = 8): Hotspot[] {
  const totals = new Map<string, number>();
  let all = 0;
  for (const node of nodes) {
    const hits = node.hitCount ?? 0;
    if (node.callFrame.functionName === "(program)" || node.callFrame.functionName === "(idle)") continue;
    totals.set(frameName(node), (totals.get(frameName(node)) ?? 0) + hits);
    all += hits;
  }
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([frame, hits]) => ({ frame, selfShare: all === 0 ? 0 : Math.round((hits / all) * 1000) / 1000 }));
}

/**
 * Inclusive (total) time under the functions `matches` accepts, over the busy
 * samples (all but idle): a sample counts once however many matching frames
 * its stack holds, so a mapper calling a parser calling a hash is not counted
 * three times. Undefined when no frame matched at all (a renamed function
 * must read as "not measured", not as 0 %).
 */
export function inclusiveShare(
  nodes: readonly CpuNode[],
  matches: (functionName: string) => boolean,
): number | undefined {
  const parent = new Map<number, CpuNode>();
  for (const node of nodes) for (const child of node.children ?? []) parent.set(child, node);
  let busy = 0;
  let under = 0;
  let matched = false;
  for (const node of nodes) {
    if (matches(node.callFrame.functionName)) matched = true;
    const hits = node.hitCount ?? 0;
    if (hits === 0 || node.callFrame.functionName === "(idle)") continue;
    busy += hits;
    for (let at: CpuNode | undefined = node; at; at = parent.get(at.id))
      if (matches(at.callFrame.functionName)) {
        under += hits;
        break;
      }
  }
  if (!matched) return undefined;
  return busy === 0 ? 0 : Math.round((under / busy) * 1000) / 1000;
}

/** The function name of a hotspot's frame (`name (file:line)`). */
export const functionOf = (frame: string) => frame.replace(/ \(.*\)$/, "");

export async function profileLoop(fn: () => void, durationMs: number): Promise<Hotspot[]> {
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 100 });
    await session.post("Profiler.start");
    const deadline = performance.now() + durationMs;
    while (performance.now() < deadline) for (let i = 0; i < 100; i += 1) fn();
    const { profile } = await session.post("Profiler.stop");
    return hotspots(profile.nodes);
  } finally {
    session.disconnect();
  }
}
