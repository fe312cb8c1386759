/**
 * The routes in queue mode (SEGMENT_QUEUE / VERO_QUEUE bound): validate and
 * map, enqueue, answer 202. The queued messages then go through the
 * Worker's own consumers, which run with the Worker's configured
 * (development) credentials, so delivery is checked at those tenants.
 */
import { describe, expect, it } from "vitest";
import { DEV_SECRETS } from "../../../dev/dev-settings.ts";
import { segmentMessages } from "../../../dev/stand-ins/client.ts";
import clicked from "../../fixtures/vero/clicked.json";
import { expectJsonError, isolatedEnv, postSegment, postWebhook, segment, vero } from "../helpers/env.ts";

const unique = (prefix: string) => `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

/**
 * A queue binding whose send fails, as a real one does when Queues is
 * unavailable: the runtime's own binding cannot be made to fail on demand.
 */
const brokenQueue = {
  send: () => Promise.reject(new Error("Queue send failed: service unavailable")),
  sendBatch: () => Promise.reject(new Error("Queue sendBatch failed: service unavailable")),
} as unknown as Queue<unknown>;

describe("POST /vero/webhook with SEGMENT_QUEUE bound", () => {
  it("answers 202 with the messageId at once, and the consumer delivers the event to Segment", async () => {
    const { env } = await isolatedEnv({}, { queued: true });
    const webhook = { ...clicked, message_id: unique("queued-click") };
    const response = await postWebhook(env, webhook);
    expect(response.status).toBe(202);
    const body = (await response.json()) as { messageId: string };
    expect(body).toEqual({
      ok: true,
      queued: true,
      messageId: expect.stringMatching(/^vero-/),
      call: "track",
      event: "Email Link Clicked",
    });
    const calls = await segment.waitFor(
      DEV_SECRETS.SEGMENT_WRITE_KEY,
      (all) => segmentMessages(all).some((message) => message.messageId === body.messageId),
      { timeoutMs: 20_000 },
    );
    expect(calls.find((call) => JSON.stringify(call.body).includes(body.messageId))?.path).toBe("/v1/batch");
  }, 30_000);

  it("still answers 200 for a type it does not forward, without enqueueing", async () => {
    const { env } = await isolatedEnv({}, { queued: true });
    const response = await postWebhook(env, { type: "dropped", user: { id: 1 } });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ ok: true, ignored: expect.any(String) });
  });

  it("refuses with 400 an event Segment would never take (over 32 KB once mapped)", async () => {
    const { env } = await isolatedEnv({}, { queued: true });
    const changes = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`trait_${i}`, "z".repeat(100)]));
    const response = await postWebhook(env, { type: "user_updated", user: { id: unique("big") }, changes });
    const error = await expectJsonError(response, 400);
    expect(error.error.code).toBe("segment_rejected");
    expect(error.error.message).toMatch(/over Segment's 32 KB/);
  });

  it("answers 503 when the queue does not take the event, so that Vero resends it", async () => {
    const { env } = await isolatedEnv({ SEGMENT_QUEUE: brokenQueue }, { queued: true });
    const error = await expectJsonError(await postWebhook(env, clicked), 503);
    expect(error.error.code).toBe("queue_unavailable");
  });

  it("answers 503 naming LEDGER when the queue is bound without the ledger (its dead letters)", async () => {
    const { env } = await isolatedEnv({ LEDGER: undefined }, { queued: true });
    const error = await expectJsonError(await postWebhook(env, clicked), 503);
    expect(error.error.message).toMatch(/LEDGER/);
  });
});

describe("POST /segment with VERO_QUEUE bound", () => {
  const track = (messageId: string, userId: string) => ({
    type: "track",
    messageId,
    userId,
    event: "Viewed product",
    properties: { sku: "T-1" },
    timestamp: "2026-11-28T12:00:00.000Z",
  });

  it("answers 202 with each event's outcome, and the consumer delivers what was queued", async () => {
    const { env } = await isolatedEnv({}, { queued: true });
    const user = unique("queued-user");
    const id = unique("q");
    const response = await postSegment(env, [
      track(id, user),
      { type: "track", messageId: "no-user", event: "x" },
      { ...track("looped", user), context: { integration: { name: "vero-segment-bridge" } } },
    ]);
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({
      ok: true,
      results: [
        { messageId: id, index: 0, outcome: "queued" },
        { messageId: "no-user", index: 1, outcome: "invalid", error: "no userId or email" },
        { messageId: "looped", index: 2, outcome: "skipped", reason: expect.stringMatching(/^loop guard/) },
      ],
    });
    const calls = await vero.waitFor(
      DEV_SECRETS.VERO_AUTH_TOKEN,
      (all) => all.some((call) => JSON.stringify(call.body).includes(user)),
      { timeoutMs: 20_000 },
    );
    const mine = calls.filter((call) => JSON.stringify(call.body).includes(user));
    expect(mine.map((call) => [call.path, call.status])).toEqual([["/api/v2/events/track", 200]]);
  }, 30_000);

  it("answers 400 when no event is deliverable, and 200 when every event is skipped", async () => {
    const { env } = await isolatedEnv({}, { queued: true });
    await expectJsonError(await postSegment(env, { type: "track", messageId: "bad", event: "x" }), 400);
    const skipped = await postSegment(env, {
      ...track("loop-only", "u"),
      context: { integration: { name: "vero-segment-bridge" } },
    });
    expect(skipped.status).toBe(200);
  });

  it("answers 503 when the queue does not take the events, listing them as failed", async () => {
    const { env } = await isolatedEnv({ VERO_QUEUE: brokenQueue }, { queued: true });
    const error = await expectJsonError(await postSegment(env, track("lost", "u")), 503);
    expect(error.error.code).toBe("queue_unavailable");
    expect(error.error.details).toEqual({
      results: [{ messageId: "lost", index: 0, outcome: "failed", retryable: true, error: expect.any(String) }],
    });
  });

  it("answers 503 naming LEDGER when the queue is bound without the ledger (its dead letters)", async () => {
    const { env } = await isolatedEnv({ LEDGER: undefined }, { queued: true });
    const error = await expectJsonError(await postSegment(env, track("x", "u")), 503);
    expect(error.error.message).toMatch(/LEDGER/);
  });
});
