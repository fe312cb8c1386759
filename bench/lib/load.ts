/**
 * The load generator: N concurrent senders, each with its own keep-alive
 * connection (an undici Pool of N connections), each sending its next request
 * as soon as the previous one is answered. Closed-loop on purpose: it measures
 * what a deployment carries at a given concurrency, the way Vero's and
 * Segment's delivery workers push webhooks, rather than a fixed arrival rate.
 */
import { performance } from "node:perf_hooks";
import { Pool } from "undici";
import { type Summary, summarize } from "./stats.ts";

export interface BenchRequest {
  path: string;
  body: string;
  headers: Record<string, string>;
}

export interface LoadOptions {
  origin: string;
  concurrency: number;
  /** Send until this much time has passed... */
  durationMs?: number;
  /** ...or until this many requests have been sent, whichever is given. */
  total?: number;
  /** The i-th request (i counts across all senders); keep it cheap, it runs on the load generator's clock. */
  request: (i: number) => BenchRequest;
}

export interface LoadResult {
  concurrency: number;
  sent: number;
  /** Answered 2xx: what counts as an event carried. */
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  elapsedMs: number;
  eventsPerSecond: number;
  /** Acknowledgement latency of 2xx answers, in ms. */
  latency: Summary;
  /** The first non-2xx answer, so a failed run says why. */
  firstFailure?: string;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  if (options.durationMs === undefined && options.total === undefined) throw new Error("give durationMs or total");
  const pool = new Pool(options.origin, { connections: options.concurrency, pipelining: 1 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  const deadline = options.durationMs === undefined ? Number.POSITIVE_INFINITY : started + options.durationMs;
  const total = options.total ?? Number.POSITIVE_INFINITY;

  const sender = async () => {
    while (next < total && performance.now() < deadline) {
      const request = options.request(next);
      next += 1;
      const sentAt = performance.now();
      try {
        const response = await pool.request({
          method: "POST",
          path: request.path,
          headers: request.headers,
          body: request.body,
        });
        const text = await response.body.text();
        const latency = performance.now() - sentAt;
        const key = String(response.statusCode);
        statuses[key] = (statuses[key] ?? 0) + 1;
        if (response.statusCode >= 200 && response.statusCode < 300) {
          ok += 1;
          latencies.push(latency);
        } else {
          failed += 1;
          firstFailure ??= `${response.statusCode} ${text.slice(0, 300)}`;
        }
      } catch (error) {
        failed += 1;
        statuses.error = (statuses.error ?? 0) + 1;
        firstFailure ??= String(error);
      }
    }
  };

  await Promise.all(Array.from({ length: options.concurrency }, sender));
  const elapsedMs = performance.now() - started;
  await pool.close();
  return {
    concurrency: options.concurrency,
    sent: ok + failed,
    ok,
    failed,
    statuses,
    elapsedMs,
    eventsPerSecond: ok / (elapsedMs / 1000),
    latency: summarize(latencies),
    firstFailure,
  };
}
