/**
 * Delivery latency, from the bridge's receipt of an event to the upstream's
 * acceptance, kept as a histogram of fixed bins: one row per 5-minute
 * bucket, direction and bin, written with the counters (never a row per
 * event). Percentiles are read back from the bins.
 */

/**
 * The bins' lower bounds in ms, 100 ms to 48 hours; a bin runs to the next
 * bound, the last one has none. Fixed: rows of any age are summed by bound,
 * so changing them would mix two scales.
 */
export const LATENCY_BOUNDS_MS = [
  0, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_200_000,
  1_800_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000, 43_200_000, 86_400_000, 172_800_000,
] as const;

/**
 * The pseudo-outcome under which latency travels with the counts (a
 * mailbox's counts, a counter shard's pending rows): its `name` is the bin's
 * lower bound, and the ledger writes it to the latency table, not the counters.
 */
export const LATENCY = "latency";

/** The lower bound of the bin `ms` falls in. */
export function binOf(ms: number): number {
  const value = Number.isFinite(ms) ? Math.max(0, ms) : 0;
  let bound = 0;
  for (const candidate of LATENCY_BOUNDS_MS) if (candidate <= value) bound = candidate;
  return bound;
}

/** What a mailbox counts for a job Vero accepted `ms` after the bridge received it: `count(...latencyCount(ms))`. */
export function latencyCount(ms: number): [name: string, outcome: typeof LATENCY] {
  return [String(binOf(ms)), LATENCY];
}

/** A histogram: events per bin, by the bin's lower bound. */
export type Histogram = Map<number, number>;

export interface LatencySummary {
  /** Events the histogram holds. */
  count: number;
  /** In ms, interpolated within their bin; null without events. Past 48 hours a percentile reads 48 hours. */
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

/** The value below which a share `p` (0 to 1) of the events fall, interpolated linearly within its bin. */
export function percentile(histogram: Histogram, p: number): number | null {
  const total = [...histogram.values()].reduce((sum, count) => sum + count, 0);
  if (total === 0) return null;
  const rank = p * total;
  let below = 0;
  for (const [index, lower] of LATENCY_BOUNDS_MS.entries()) {
    const count = histogram.get(lower) ?? 0;
    if (count === 0) continue;
    if (below + count >= rank) {
      const upper = LATENCY_BOUNDS_MS[index + 1];
      if (upper === undefined) return lower;
      return Math.round(lower + ((upper - lower) * Math.max(0, rank - below)) / count);
    }
    below += count;
  }
  return LATENCY_BOUNDS_MS.at(-1) ?? null;
}

export function summarise(histogram: Histogram): LatencySummary {
  return {
    count: [...histogram.values()].reduce((sum, count) => sum + count, 0),
    p50Ms: percentile(histogram, 0.5),
    p95Ms: percentile(histogram, 0.95),
    p99Ms: percentile(histogram, 0.99),
  };
}
