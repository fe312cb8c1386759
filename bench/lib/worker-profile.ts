/**
 * A CPU profile of the Worker's isolate under `wrangler dev`, taken through
 * the DevTools inspector wrangler exposes: it tells how busy the isolate was
 * while the load ran, what that costs per event, and where the time went, so
 * a missed throughput goal can be put down to a measurement.
 */
import { WebSocket } from "undici";
import type { RunningBridge } from "../../dev/bridge.ts";
import { type CpuNode, type Hotspot, hotspots, inclusiveShare } from "./profile.ts";

export interface WorkerProfile {
  /** Samples in which the isolate ran JavaScript or GC (not idle), over all samples. */
  busyShare: number;
  wallMs: number;
  /** busyShare x wall time: the isolate's CPU time over the window. */
  busyMs: number;
  hotspots: Hotspot[];
  /** Inclusive share of the busy samples under the functions `options.inclusiveOf` accepts (see inclusiveShare). */
  inclusiveShare?: number;
}

interface CdpProfile {
  nodes: CpuNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

function inspectorPort(bridge: RunningBridge): string {
  const args = bridge.process.spawnargs;
  const port = args[args.indexOf("--inspector-port") + 1];
  if (!port || args.indexOf("--inspector-port") === -1)
    throw new Error("wrangler dev was started without --inspector-port");
  return port;
}

export async function profileWorker<T>(
  bridge: RunningBridge,
  during: () => Promise<T>,
  options: { inclusiveOf?: (functionName: string) => boolean } = {},
): Promise<{ result: T; profile: WorkerProfile }> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort(bridge)}/json`)).json()) as {
    webSocketDebuggerUrl?: string;
  }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error("wrangler's inspector lists no Worker");
  // The inspector proxy refuses a WebSocket without a local Origin (a browser tab elsewhere must not attach).
  const socket = new WebSocket(url, { headers: { origin: "http://127.0.0.1" } });
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener("open", () => resolve(), { once: true });
    socket.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), { once: true });
  });
  const pending = new Map<number, (message: { result?: unknown; error?: { message: string } }) => void>();
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
    if (message.id !== undefined) pending.get(message.id)?.(message);
  });
  let nextId = 0;
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      nextId += 1;
      pending.set(nextId, (message) =>
        message.error ? reject(new Error(`${method}: ${message.error.message}`)) : resolve(message.result),
      );
      socket.send(JSON.stringify({ id: nextId, method, params }));
    });
  try {
    await send("Profiler.enable");
    await send("Profiler.setSamplingInterval", { interval: 200 });
    await send("Profiler.start");
    const result = await during();
    const { profile } = (await send("Profiler.stop")) as { profile: CdpProfile };
    let idle = 0;
    let all = 0;
    for (const node of profile.nodes) {
      const hits = node.hitCount ?? 0;
      all += hits;
      if (node.callFrame.functionName === "(idle)") idle += hits;
    }
    const wallMs = (profile.endTime - profile.startTime) / 1000;
    const busyShare = all === 0 ? 0 : (all - idle) / all;
    return {
      result,
      profile: {
        busyShare: Math.round(busyShare * 1000) / 1000,
        wallMs: Math.round(wallMs),
        busyMs: Math.round(busyShare * wallMs),
        hotspots: hotspots(profile.nodes, 10),
        inclusiveShare: options.inclusiveOf ? inclusiveShare(profile.nodes, options.inclusiveOf) : undefined,
      },
    };
  } finally {
    socket.close();
  }
}
