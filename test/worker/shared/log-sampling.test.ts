/**
 * LOG_SAMPLE_RATE: failures are always logged, successes only for sampled
 * messageIds, and one messageId is sampled alike in the route and in the
 * queue consumer. Real HTTP to the stand-ins; the consumers run through
 * worker.queue, the routes through worker.fetch, so each invocation reads
 * the rate from its env as in production.
 */
import { describe, expect, it } from "vitest";
import { QUEUE_NAMES } from "../../../src/delivery/settlement.ts";
import { segmentJob } from "../../../src/inbound/job.ts";
import { mapVeroWebhook, type SegmentMessage } from "../../../src/inbound/map.ts";
import type { VeroJob } from "../../../src/outbound/job.ts";
import type { Env } from "../../../src/shared/env.ts";
import { DEFAULT_LOG_SAMPLE_RATE, isSampled } from "../../../src/shared/log.ts";
import { settingsFor } from "../../../src/shared/settings.ts";
import { isolatedEnv, postSegment, postWebhook, segment, vero } from "../helpers/env.ts";
import { capturingLogs } from "../helpers/fuzz.ts";
import { runBatch } from "../helpers/queue.ts";

/** LOG_SAMPLE_RATE as the settings object holds it: parsed once per env. */
const logSampleRate = (env: Partial<Env>) => settingsFor(env as Env).logSampleRate;

type Line = { level: string; msg: string; [field: string]: unknown };

/** Runs `run` and returns the lines it logged, parsed. */
async function linesOf(run: () => Promise<unknown>): Promise<Line[]> {
  const { lines } = await capturingLogs(run);
  return lines.map((line) => JSON.parse(line) as Line);
}

const msgs = (lines: Line[]) => lines.map((line) => line.msg);
/** The always-on lines, one per unit of delivery work (the bench sums their d1Statements and doRequests). */
const SUMMARIES = new Set(["outbound handed to mailboxes", "mailbox drain", "counters flushed", "vero batch"]);

const run = `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
let counter = 0;

/** A Vero webhook no other test sends, and the messageId the mapping gives it. */
function newWebhook(): { payload: unknown; messageId: string } {
  counter++;
  const payload = {
    type: "opened",
    opened_at: 1435016238,
    user: { id: `sampling-${run}-${counter}`, email: "sampled.user@example.com" },
    campaign: { id: `${counter}`, name: "Sampling" },
  };
  const mapped = mapVeroWebhook(payload, { receivedAt: new Date() });
  if (mapped.kind !== "message") throw new Error(`the webhook does not map: ${JSON.stringify(mapped)}`);
  return { payload, messageId: mapped.message.messageId };
}

/** The first new webhook (or messageId) whose sampling at `rate` is `sampled`, as the bridge decides it. */
function webhookSampled(sampled: boolean, rate: number): { payload: unknown; messageId: string } {
  for (;;) {
    const webhook = newWebhook();
    if (isSampled(webhook.messageId, rate) === sampled) return webhook;
  }
}

const newMessageId = () => `sampling-${run}-${++counter}`;

function messageIdSampled(sampled: boolean, rate: number): string {
  for (;;) {
    const id = newMessageId();
    if (isSampled(id, rate) === sampled) return id;
  }
}

const sendSegmentEvent = (env: Env, messageId: string) =>
  postSegment(env, { type: "track", userId: `u-${messageId}`, event: "Signed Up", messageId });

/** The Segment message the route would have enqueued for `payload`. */
function segmentMessage(payload: unknown): SegmentMessage {
  const mapped = mapVeroWebhook(payload, { receivedAt: new Date() });
  if (mapped.kind !== "message") throw new Error("the webhook does not map");
  return mapped.message;
}

const veroJob = (messageId: string): VeroJob => ({
  v: 1,
  kind: "vero",
  messageId,
  user: `u-${messageId}`,
  requests: [
    {
      method: "POST",
      path: "/events/track",
      body: {
        identity: { id: `u-${messageId}` },
        event_name: "Signed Up",
        data: {},
        extras: { created_at: 1, source: "segment" },
      },
    },
  ],
});

describe("the sampling decision", () => {
  it("samples about rate × n of 10,000 messageIds, the same ones every time", () => {
    const ids = Array.from({ length: 10_000 }, (_, index) => `vero-${index.toString(16).padStart(32, "0")}`);
    const sampled = ids.filter((id) => isSampled(id, 0.01));
    expect(sampled.length).toBeGreaterThanOrEqual(50);
    expect(sampled.length).toBeLessThanOrEqual(150);
    expect(ids.filter((id) => isSampled(id, 0.01))).toEqual(sampled);
    // A higher rate keeps every id a lower one took: turning the rate up only adds lines.
    const atTenth = new Set(ids.filter((id) => isSampled(id, 0.1)));
    expect(atTenth.size).toBeGreaterThanOrEqual(900);
    expect(atTenth.size).toBeLessThanOrEqual(1_100);
    for (const id of sampled) expect(atTenth.has(id)).toBe(true);
  });

  it("takes everything at 1, nothing at 0, and an event without a messageId only at 1", () => {
    expect(isSampled("any", 1)).toBe(true);
    expect(isSampled("any", 0)).toBe(false);
    for (const missing of [null, undefined, ""]) {
      expect(isSampled(missing, 1)).toBe(true);
      expect(isSampled(missing, 0.99)).toBe(false);
    }
  });
});

describe("LOG_SAMPLE_RATE", () => {
  it("defaults to 0.01 and takes any number from 0 to 1", () => {
    expect(DEFAULT_LOG_SAMPLE_RATE).toBe(0.01);
    expect(logSampleRate({})).toBe(0.01);
    expect(logSampleRate({ LOG_SAMPLE_RATE: " " })).toBe(0.01);
    expect(logSampleRate({ LOG_SAMPLE_RATE: "0" })).toBe(0);
    expect(logSampleRate({ LOG_SAMPLE_RATE: " 0.25\n" })).toBe(0.25);
    expect(logSampleRate({ LOG_SAMPLE_RATE: "1" })).toBe(1);
  });

  it("when invalid, is logged once as an error and the default applies", async () => {
    for (const value of ["2", "-0.1", "1%", "all"]) {
      const env = { LOG_SAMPLE_RATE: value };
      const lines = await linesOf(async () => [logSampleRate(env), logSampleRate(env)]);
      expect(logSampleRate(env)).toBe(0.01);
      expect(lines).toEqual([{ level: "error", msg: "LOG_SAMPLE_RATE is not a number from 0 to 1; using 0.01" }]);
    }
  });

  it("with a typo, routes still deliver and answer", async () => {
    const { env } = await isolatedEnv({ LOG_SAMPLE_RATE: "0,5" });
    const lines = await linesOf(async () => expect((await postWebhook(env, newWebhook().payload)).status).toBe(200));
    expect(lines.filter((line) => line.level === "error").map((line) => line.msg)).toEqual([
      "LOG_SAMPLE_RATE is not a number from 0 to 1; using 0.01",
    ]);
  });
});

describe("at rate 0", () => {
  it("a delivered webhook writes no line, inline or through the Segment queue consumer, but its batch line", async () => {
    const { env, writeKey } = await isolatedEnv({ LOG_SAMPLE_RATE: "0" });
    const { payload } = newWebhook();
    const inline = await linesOf(async () => expect((await postWebhook(env, payload)).status).toBe(200));
    expect(inline).toEqual([]);

    const consumed = await linesOf(() =>
      runBatch(QUEUE_NAMES.segment, [{ id: "ok", body: segmentJob(segmentMessage(newWebhook().payload)) }], env),
    );
    expect(msgs(consumed)).toEqual(["segment batch"]);
    expect(consumed[0]).toMatchObject({ level: "info", delivered: 1, failed: 0 });
    expect((await segment.calls(writeKey)).filter((call) => call.status === 200)).toHaveLength(2);
  });

  it("a failed webhook writes its lines, inline and in the consumer", async () => {
    const { env, writeKey } = await isolatedEnv({ LOG_SAMPLE_RATE: "0" });
    // Refused rather than failing retryably: analytics-node's retries inside one request would take seconds.
    await segment.fail(writeKey, { status: 400, times: 1 });
    const inline = await linesOf(async () => expect((await postWebhook(env, newWebhook().payload)).status).toBe(400));
    expect(msgs(inline)).toEqual(["segment call", "vero webhook"]);
    expect(inline[0]).toMatchObject({ level: "warn", status: 400, outcome: "refused" });
    expect(inline[1]).toMatchObject({ status: 400, outcome: "segment_rejected" });

    await segment.fail(writeKey, { status: 500, times: 1 });
    const message = segmentMessage(newWebhook().payload);
    const consumed = await linesOf(() =>
      runBatch(QUEUE_NAMES.segment, [{ id: "fails", body: segmentJob(message) }], env),
    );
    expect(msgs(consumed)).toEqual(["segment call", "delivery failed, will retry", "segment batch"]);
    expect(consumed[0]).toMatchObject({ level: "warn", status: 500, messageIds: [message.messageId] });
    expect(consumed[2]).toMatchObject({ level: "warn", delivered: 0, failed: 1 });
  });

  it("a delivered Segment event writes no line, handed to its mailbox or through the Vero queue consumer: a clean hand-over's or batch's summary is a success line too", async () => {
    const { env, veroToken } = await isolatedEnv({ LOG_SAMPLE_RATE: "0" });
    const direct = await linesOf(async () => expect((await sendSegmentEvent(env, newMessageId())).status).toBe(202));
    expect(msgs(direct).filter((msg) => !SUMMARIES.has(msg))).toEqual([]);
    expect(msgs(direct)).not.toContain("outbound handed to mailboxes");

    const consumed = await linesOf(() =>
      runBatch(QUEUE_NAMES.vero, [{ id: "ok", body: veroJob(newMessageId()) }], env),
    );
    expect(msgs(consumed).filter((msg) => !SUMMARIES.has(msg))).toEqual([]);
    expect(msgs(consumed)).not.toContain("vero batch");
    expect((await vero.calls(veroToken)).filter((call) => call.status === 200)).toHaveLength(2);
  });

  it("a failed Segment event writes its lines, in its mailbox, whichever way it came", async () => {
    // The ledger holds the mailbox's dead letter; a minute before any retry.
    const { env, veroToken } = await isolatedEnv(
      { LOG_SAMPLE_RATE: "0", QUEUE_RETRY_BASE_SECONDS: "60" },
      { ledger: true },
    );
    await vero.fail(veroToken, { status: 500, times: 1 });
    const direct = await linesOf(async () => expect((await sendSegmentEvent(env, newMessageId())).status).toBe(202));
    expect(msgs(direct)).toEqual(expect.arrayContaining(["vero call", "delivery failed, will retry"]));
    expect(direct.find((line) => line.msg === "vero call")).toMatchObject({
      level: "warn",
      status: 500,
      outcome: "retryable",
    });

    await vero.fail(veroToken, { status: 400, times: 1 });
    const consumed = await linesOf(() =>
      runBatch(QUEUE_NAMES.vero, [{ id: "refused", body: veroJob(newMessageId()) }], env),
    );
    // The batch itself went cleanly (the mailbox took the job): its line is a success line, not written at rate 0.
    expect(msgs(consumed)).toEqual(expect.arrayContaining(["vero call", "delivery failed for good, dead-lettered"]));
  });
});

describe("one messageId, sampled alike in the route and in the consumer", () => {
  const RATE = 0.5;

  it("inbound: the webhook's lines appear in both places for a sampled messageId, in neither for another", async () => {
    const { env } = await isolatedEnv({ LOG_SAMPLE_RATE: String(RATE) });
    for (const sampled of [true, false]) {
      const { payload, messageId } = webhookSampled(sampled, RATE);
      const route = await linesOf(async () => expect((await postWebhook(env, payload)).status).toBe(200));
      const consumer = await linesOf(() =>
        runBatch(QUEUE_NAMES.segment, [{ id: messageId, body: segmentJob(segmentMessage(payload)) }], env),
      );
      if (sampled) {
        expect(msgs(route)).toEqual(["segment call", "vero webhook"]);
        expect(route[0]).toMatchObject({ level: "info", status: 200, messageIds: [messageId] });
        expect(route[1]).toMatchObject({ level: "info", status: 200, outcome: "delivered", messageId });
        expect(msgs(consumer)).toEqual(["segment call", "segment batch"]);
        expect(consumer[0]).toMatchObject({ level: "info", status: 200, messageIds: [messageId] });
      } else {
        expect(route).toEqual([]);
        expect(msgs(consumer)).toEqual(["segment batch"]);
      }
    }
  });

  it("inbound: a consumer's Segment call names only the sampled messages of its batch", async () => {
    const { env } = await isolatedEnv({ LOG_SAMPLE_RATE: String(RATE) });
    const kept = webhookSampled(true, RATE);
    const dropped = webhookSampled(false, RATE);
    const consumer = await linesOf(() =>
      runBatch(
        QUEUE_NAMES.segment,
        [kept, dropped].map(({ payload, messageId }) => ({ id: messageId, body: segmentJob(segmentMessage(payload)) })),
        env,
      ),
    );
    expect(msgs(consumer)).toEqual(["segment call", "segment batch"]);
    expect(consumer[0]).toMatchObject({ events: 2, messageIds: [kept.messageId] });
    expect(consumer[1]).toMatchObject({ delivered: 2, sent: 2 });
  });

  it("outbound: the event's lines appear in both places for a sampled messageId, in neither for another", async () => {
    const { env } = await isolatedEnv({ LOG_SAMPLE_RATE: String(RATE) });
    for (const sampled of [true, false]) {
      const messageId = messageIdSampled(sampled, RATE);
      const route = await linesOf(async () => expect((await sendSegmentEvent(env, messageId)).status).toBe(202));
      // Another event of the same sampling: the mailbox would skip this one's messageId, delivered already.
      const queuedId = messageIdSampled(sampled, RATE);
      const consumer = await linesOf(() =>
        runBatch(QUEUE_NAMES.vero, [{ id: queuedId, body: veroJob(queuedId) }], env),
      );
      // The route hands the event on; its mailbox makes the call and logs it, sampled by the same rule.
      const perEvent = (lines: Line[]) => msgs(lines).filter((msg) => !SUMMARIES.has(msg));
      if (sampled) {
        expect(perEvent(route)).toEqual(expect.arrayContaining(["vero call", "outbound request"]));
        expect(route.find((line) => line.msg === "vero call")).toMatchObject({ level: "info", outcome: "delivered" });
        expect(perEvent(consumer)).toEqual(["vero call"]);
      } else {
        expect(perEvent(route)).toEqual([]);
        expect(perEvent(consumer)).toEqual([]);
      }
      // The batch's own line is sampled by its messageIds too.
      if (sampled) expect(msgs(consumer)).toContain("vero batch");
      else expect(msgs(consumer)).not.toContain("vero batch");
    }
  });
});
