/** Route-level findings of the second hardening review: each test names what it guards. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_MESSAGE_ID_LENGTH } from "../../../src/outbound/schema.ts";
import { isolatedEnv, postSegment, vero } from "../helpers/env.ts";

const track = (messageId: string, properties: Record<string, unknown> = {}) => ({
  type: "track",
  messageId,
  userId: "hardening-user",
  event: "Viewed",
  properties,
  timestamp: "2026-11-28T10:00:00.000Z",
});

interface Results {
  results: { messageId: string | null; outcome: string; error?: string }[];
}

afterEach(() => vi.restoreAllMocks());

describe("messageId length", () => {
  it("refuses an event whose messageId is over Segment's 100 characters, per event, and delivers its neighbour", async () => {
    const { env, veroToken } = await isolatedEnv();
    const long = "m".repeat(100_000);
    const response = await postSegment(env, [track(long), track("short-id-1")]);
    const text = await response.text();
    expect(response.status, text).toBe(202);
    const { results } = JSON.parse(text) as Results;
    expect(results[0]).toMatchObject({
      messageId: null,
      outcome: "invalid",
      error: expect.stringContaining(`messageId must be at most ${MAX_MESSAGE_ID_LENGTH} characters`),
    });
    expect(results[1]).toMatchObject({ messageId: "short-id-1", outcome: "queued" });
    // The long id is neither echoed back nor sent on.
    expect(text).not.toContain("m".repeat(MAX_MESSAGE_ID_LENGTH + 1));
    expect(await vero.calls(veroToken)).toHaveLength(1);
  });

  it("accepts a messageId of exactly 100 characters", async () => {
    const { env } = await isolatedEnv();
    const response = await postSegment(env, track("k".repeat(MAX_MESSAGE_ID_LENGTH)));
    expect(response.status, await response.text()).toBe(202);
  });
});

describe("an event too large for a queue message", () => {
  it("is refused with a warning always logged, not only at the sampled request line", async () => {
    const { env } = await isolatedEnv({ LOG_SAMPLE_RATE: "0" }, { queued: true });
    const warnings: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: unknown) => void warnings.push(String(line)));
    const big = track("too-big-for-a-queue", { blob: "x".repeat(200_000) });
    const response = await postSegment(env, [big, track("fits-a-queue")]);
    const text = await response.text();
    expect(response.status, text).toBe(202);
    const { results } = JSON.parse(text) as Results;
    expect(results.map((result) => result.outcome)).toEqual(["invalid", "queued"]);
    const refusals = warnings
      .map((line) => JSON.parse(line))
      .filter((line) => line.messageId === "too-big-for-a-queue");
    expect(refusals).toEqual([
      expect.objectContaining({ level: "warn", msg: "outbound event refused: too large for a queue message" }),
    ]);
  });
});
