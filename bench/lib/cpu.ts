/**
 * How busy the whole machine and this process were during a measurement:
 * with the load generator, the stand-ins and two `wrangler dev` on the same
 * cores, a throughput figure means little without knowing whether the
 * machine itself was the ceiling.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

function machineTicks(): { busy: number; total: number } | undefined {
  try {
    // Linux: the first line of /proc/stat sums every core; fields 4 and 5 are idle and iowait.
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    const total = fields.reduce((sum, value) => sum + value, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

export interface CpuShare {
  /** Share of all cores' time spent busy (any process), 0..1; undefined off Linux. */
  machineBusy?: number;
  /** CPU time of this process (load generator and stand-ins), in cores (1 = one core fully). */
  benchProcessCores: number;
}

export function cpuMeter(): () => CpuShare {
  const startMachine = machineTicks();
  const startProcess = process.cpuUsage();
  const startWall = performance.now();
  return () => {
    const endMachine = machineTicks();
    const used = process.cpuUsage(startProcess);
    const wallMicros = (performance.now() - startWall) * 1000;
    const machineBusy =
      startMachine && endMachine && endMachine.total > startMachine.total
        ? (endMachine.busy - startMachine.busy) / (endMachine.total - startMachine.total)
        : undefined;
    return {
      machineBusy: machineBusy === undefined ? undefined : Math.round(machineBusy * 100) / 100,
      benchProcessCores: Math.round(((used.user + used.system) / wallMicros) * 100) / 100,
    };
  };
}
