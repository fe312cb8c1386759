/**
 * The retry schedule as a pure function: how long a failing message is
 * tried, that it never outlasts the queue's retention, and what it makes of
 * a Retry-After. The docs' table is this function's output.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { retryTableMarkdown } from "../../dev/retry-table.ts";
import {
  DEFAULT_RETRY_POLICY,
  keepDelaySeconds,
  maxHorizonSeconds,
  nextStep,
  QUEUE_MAX_DELAY_SECONDS,
  QUEUE_MAX_RETRIES_LIMIT,
  type RetryPolicy,
  scheduleTable,
  shortestSpanSeconds,
} from "../../src/delivery/retry-schedule.ts";
import { MAX_RETRIES } from "../../src/shared/queue-limits.ts";

const HOUR = 3600;
const policy = DEFAULT_RETRY_POLICY;

/** Fails a message at every attempt, with jitter drawn from `draws`, until the schedule stops; returns the span. */
function failForever(p: RetryPolicy, draw: (attempt: number) => number, retryAfter?: number) {
  let elapsedSeconds = 0;
  const delays: number[] = [];
  for (let attempts = 1; ; attempts++) {
    const step = nextStep(p, { attempts, elapsedSeconds, random: draw(attempts), retryAfter });
    if (!step.retry) return { elapsedSeconds, attempts, delays, reason: step.reason };
    delays.push(step.delaySeconds);
    elapsedSeconds += step.delaySeconds;
  }
}

describe("the retry schedule", () => {
  it("retries for at least 26 hours by default before a dead letter, whatever the jitter draws", () => {
    expect(policy.horizonSeconds).toBeGreaterThanOrEqual(26 * HOUR);
    for (const draw of [() => 0, () => 0.999_999, (n: number) => (n * 0.37) % 1]) {
      const run = failForever(policy, draw);
      expect(run.elapsedSeconds).toBeGreaterThanOrEqual(26 * HOUR);
      expect(run.attempts).toBeLessThanOrEqual(MAX_RETRIES);
    }
    // The horizon, not the attempt count, ends it: even the shortest delays reach it within max_retries.
    expect(shortestSpanSeconds(policy)).toBe(policy.horizonSeconds);
  });

  it("backs off from 5 s, doubling, capped at an hour, with up to 20% jitter", () => {
    const longest = failForever(policy, () => 0).delays;
    expect(longest.slice(0, 12)).toEqual([5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
    const shortest = failForever(policy, () => 0.999_999).delays;
    expect(shortest.slice(0, 3)).toEqual([4, 8, 16]);
    expect(Math.max(...shortest, ...longest)).toBe(3600);
  });

  it("never schedules a try past the horizon, which ends an hour before the declared retention", () => {
    for (const retentionHours of [24, 96, 14 * 24]) {
      const retentionSeconds = retentionHours * HOUR;
      const p = { ...policy, retentionSeconds, horizonSeconds: maxHorizonSeconds(retentionSeconds) };
      const rows = scheduleTable(p);
      expect(rows.at(-1)?.elapsedSeconds).toBe(p.horizonSeconds);
      expect(p.horizonSeconds).toBeLessThanOrEqual(retentionSeconds - HOUR);
      const withRetryAfter = failForever(p, () => 0.5, 40_000);
      expect(withRetryAfter.elapsedSeconds).toBeLessThanOrEqual(p.horizonSeconds);
    }
  });

  it("waits as long as Retry-After asks, up to Queues' largest delay and what is left of the horizon", () => {
    expect(nextStep(policy, { attempts: 1, elapsedSeconds: 0, random: 0, retryAfter: 120 })).toEqual({
      retry: true,
      delaySeconds: 120,
    });
    expect(nextStep(policy, { attempts: 1, elapsedSeconds: 0, random: 0, retryAfter: 7200 })).toEqual({
      retry: true,
      delaySeconds: 7200,
    });
    expect(nextStep(policy, { attempts: 1, elapsedSeconds: 0, random: 0, retryAfter: 86_400 })).toEqual({
      retry: true,
      delaySeconds: QUEUE_MAX_DELAY_SECONDS,
    });
    expect(nextStep(policy, { attempts: 5, elapsedSeconds: 25 * HOUR, random: 0, retryAfter: HOUR })).toEqual({
      retry: true,
      delaySeconds: HOUR,
    });
    // A shorter Retry-After than the backoff does not shorten it.
    expect(nextStep(policy, { attempts: 12, elapsedSeconds: 0, random: 0, retryAfter: 10 })).toEqual({
      retry: true,
      delaySeconds: HOUR,
    });
  });

  it("dead-letters at once when Retry-After ends past the horizon, rather than trying before the upstream allows", () => {
    expect(nextStep(policy, { attempts: 5, elapsedSeconds: 25 * HOUR, random: 0, retryAfter: 7200 })).toEqual({
      retry: false,
      reason: "the upstream asked to wait 2 h 00 min, past the retry horizon (1 h 00 min left) after 5 attempts",
    });
    // Just within what is left, it is waited for in full.
    expect(nextStep(policy, { attempts: 5, elapsedSeconds: 25 * HOUR, random: 0, retryAfter: 3599.5 })).toEqual({
      retry: true,
      delaySeconds: HOUR,
    });
  });

  it("stops at the horizon, and at Queues' max_retries whatever the time", () => {
    expect(nextStep(policy, { attempts: 3, elapsedSeconds: policy.horizonSeconds, random: 0 })).toMatchObject({
      retry: false,
    });
    expect(nextStep(policy, { attempts: MAX_RETRIES + 1, elapsedSeconds: 0, random: 0 })).toEqual({
      retry: false,
      reason: `retries exhausted after ${MAX_RETRIES + 1} attempts`,
    });
    expect(MAX_RETRIES).toBe(QUEUE_MAX_RETRIES_LIMIT);
  });

  it("would compress to immediate retries with a base of 0 (which the settings refuse), the attempt count then ending them", () => {
    const run = failForever({ ...policy, baseSeconds: 0 }, () => 0);
    expect(new Set(run.delays)).toEqual(new Set([0]));
    expect(run.attempts).toBe(MAX_RETRIES + 1);
  });

  it("keeps a message the whole retention when asked to (a dead letter whose store is down)", () => {
    for (const retentionHours of [24, 96, 14 * 24]) {
      const p = { ...policy, retentionSeconds: retentionHours * HOUR };
      let span = 0;
      for (let attempts = 1; attempts <= p.maxRetries; attempts++) span += keepDelaySeconds(p, attempts);
      expect(span).toBeGreaterThanOrEqual(p.retentionSeconds);
      expect(keepDelaySeconds(p, 1)).toBeLessThanOrEqual(QUEUE_MAX_DELAY_SECONDS);
    }
  });

  it("is the table the docs show", () => {
    // Cells compared, not padding: a formatter may align the columns.
    const cells = (markdown: string) =>
      markdown
        .trim()
        .split("\n")
        .map((line) =>
          line
            .split("|")
            .map((cell) => cell.trim().replace(/^(:?)-+(:?)$/, "$1---$2"))
            .join("|"),
        );
    const table = cells(retryTableMarkdown(policy));
    const docs = ["docs", join("docs", "pending")]
      .flatMap((dir) => {
        try {
          return readdirSync(dir)
            .filter((name) => name.endsWith(".md"))
            .map((name) => join(dir, name));
        } catch {
          return [];
        }
      })
      .map((path) => readFileSync(path, "utf8"))
      .filter((text) => text.includes("<!-- retry-table -->"));
    expect(docs.length).toBeGreaterThan(0);
    for (const text of docs) {
      const block = text.split("<!-- retry-table -->")[1]?.split("<!-- /retry-table -->")[0] ?? "";
      expect(cells(block)).toEqual(table);
    }
  });
});
