/**
 * The limits the bridge enforces before any upstream call: nesting depth on
 * both routes, events per request (4,000 on /segment, Segment's 2,500 on
 * /v1/batch), and Vero's 255 characters for ids, emails and event names.
 */
import { describe, expect, it } from "vitest";
import { VERO_MAX_FIELD_LENGTH } from "../../../src/outbound/map.ts";
import type { Env } from "../../../src/shared/env.ts";
import { MAX_JSON_DEPTH } from "../../../src/shared/json.ts";
import { basic, callWorker, expectJsonError, isolatedEnv, postSegment, segment, vero } from "../helpers/env.ts";
import { nested } from "../helpers/fuzz.ts";
import { recordingQueue } from "../helpers/recording-queue.ts";

const TOKEN = "dev-vero-webhook-token-for-local-use";
const SECRET = "dev-segment-shared-secret-for-local-use";

const webhook = (env: Env, body: unknown) =>
  callWorker(
    new Request(`http://bridge/vero/webhook?token=${TOKEN}`, { method: "POST", body: JSON.stringify(body) }),
    env,
  );

/** An array body as Webhooks (Actions) batches it, authenticated as a whole. */
const actionsBatch = (env: Env, body: unknown) =>
  callWorker(
    new Request("http://bridge/segment", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { Authorization: basic(SECRET) },
    }),
    env,
  );

const batch = (env: Env, body: unknown) =>
  callWorker(
    new Request("http://bridge/v1/batch", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { Authorization: basic(SECRET) },
    }),
    env,
  );

describe(`nesting depth (at most ${MAX_JSON_DEPTH} levels)`, () => {
  // The webhook object is level 1, so `deep` may add MAX_JSON_DEPTH - 1 levels.
  const opened = (depth: number) => ({ type: "opened", user: { id: 1 }, deep: nested(depth - 1) });

  it("inbound: delivers a webhook exactly at the limit", async () => {
    const { env, writeKey } = await isolatedEnv();
    const response = await webhook(env, opened(MAX_JSON_DEPTH));
    expect(response.status, await response.text()).toBe(200);
    expect(await segment.accepted(writeKey)).toHaveLength(1);
  });

  it("inbound: refuses one level more with a 400 naming the limit, and sends nothing", async () => {
    const { env, writeKey } = await isolatedEnv();
    const body = await expectJsonError(await webhook(env, opened(MAX_JSON_DEPTH + 1)), 400);
    expect(body.error.message).toBe(`payload nests objects or arrays deeper than ${MAX_JSON_DEPTH} levels`);
    expect(await segment.calls(writeKey)).toEqual([]);
  });

  it("inbound: refuses nesting no stack could walk (a 400, not a 500)", async () => {
    const { env, writeKey } = await isolatedEnv();
    const deep = `${"[".repeat(300_000)}${"]".repeat(300_000)}`;
    const response = await callWorker(
      new Request(`http://bridge/vero/webhook?token=${TOKEN}`, {
        method: "POST",
        body: `{"type":"opened","user":{"id":1},"deep":${deep}}`,
      }),
      env,
    );
    expect((await expectJsonError(response, 400)).error.message).toMatch(/deeper than 32 levels/);
    expect(await segment.calls(writeKey)).toEqual([]);
  });

  // The event is level 1 and `properties` level 2.
  const track = (messageId: string, depth: number) => ({
    type: "track",
    messageId,
    userId: "u-1",
    event: "Deep",
    properties: { deep: nested(depth - 2) },
  });

  it("outbound: delivers an event exactly at the limit, refuses its neighbour one level deeper", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await batch(env, { batch: [track("at", MAX_JSON_DEPTH), track("over", MAX_JSON_DEPTH + 1)] });
    const body = (await response.json()) as { results: unknown[] };
    expect(response.status).toBe(200);
    expect(body.results).toEqual([
      { messageId: "at", index: 0, outcome: "queued" },
      {
        messageId: "over",
        index: 1,
        outcome: "invalid",
        error: `event nests objects or arrays deeper than ${MAX_JSON_DEPTH} levels`,
      },
    ]);
    expect(await vero.calls(veroToken)).toHaveLength(1);
  });

  it("outbound: refuses nesting no stack could walk (a 400, not a retryable 503)", async () => {
    const { env, veroToken } = await isolatedEnv();
    const deep = `${"[".repeat(300_000)}${"]".repeat(300_000)}`;
    const response = await callWorker(
      new Request("http://bridge/segment", {
        method: "POST",
        body: `{"type":"track","userId":"u-1","event":"Deep","properties":{"deep":${deep}}}`,
        headers: { Authorization: basic(SECRET) },
      }),
      env,
    );
    expect((await expectJsonError(response, 400)).error.message).toMatch(/deeper than 32 levels/);
    expect(await vero.calls(veroToken)).toEqual([]);
  });
});

describe("events per request", () => {
  it("/segment reads 4,000 events one by one (Webhooks (Actions)' largest batch), and refuses 4,001 as a whole", async () => {
    const { env, veroToken } = await isolatedEnv();
    const atLimit = await expectJsonError(await actionsBatch(env, Array(4_000).fill({})), 400);
    expect(atLimit.error.code).toBe("invalid_event");
    expect(atLimit.error.message).toMatch(/^none of the 4000 events is deliverable/);
    const overLimit = await expectJsonError(await actionsBatch(env, Array(4_001).fill({})), 400);
    expect(overLimit.error.message).toBe("the request holds 4001 events; at most 4000 per batch");
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("/v1/batch refuses the events past Segment's 2,500th one by one and answers 200, as Segment does", async () => {
    const { env: queuedEnv, veroToken } = await isolatedEnv({}, { queued: true });
    const { queue, sent } = recordingQueue();
    const env = { ...queuedEnv, VERO_QUEUE: queue };
    const events = Array.from({ length: 2_502 }, (_, index) => ({
      type: "track",
      messageId: `m-${index}`,
      userId: "u-1",
      event: "E",
    }));
    const response = await batch(env, { batch: events });
    expect(response.status).toBe(200);
    const { success, results } = (await response.json()) as {
      success: boolean;
      results: { index: number; outcome: string; error?: string }[];
    };
    expect(success).toBe(true);
    expect(results.filter((result) => result.outcome === "queued")).toHaveLength(2_500);
    expect(sent).toHaveLength(2_500);
    expect(results.slice(2_500)).toEqual([
      expect.objectContaining({
        index: 2_500,
        outcome: "invalid",
        error: expect.stringMatching(/past the 2500 events/),
      }),
      expect.objectContaining({ index: 2_501, outcome: "invalid" }),
    ]);
    expect(await vero.calls(veroToken)).toEqual([]);
  });
});

describe(`Vero's ${VERO_MAX_FIELD_LENGTH} characters`, () => {
  const long = "x".repeat(VERO_MAX_FIELD_LENGTH + 1);
  const longEmail = `${"j".repeat(VERO_MAX_FIELD_LENGTH - "@example.com".length + 1)}@example.com`;
  const cases: [field: string, event: Record<string, unknown>][] = [
    ["userId", { type: "track", userId: long, event: "Signed Up" }],
    ["userId", { type: "identify", userId: long }],
    ["userId", { type: "delete", userId: long }],
    ["previousId", { type: "alias", previousId: long, userId: "u-1" }],
    ["event", { type: "track", userId: "u-1", event: long }],
    ["properties.id", { type: "track", userId: "u-1", event: "Unsubscribe", properties: { id: long } }],
    ["traits.email", { type: "identify", userId: "u-1", traits: { email: longEmail } }],
    ["traits.email", { type: "group", traits: { email: longEmail } }],
    ["context.traits.email", { type: "page", userId: "u-1", context: { traits: { email: longEmail } } }],
    [
      "integrations.Vero.tags.id",
      { type: "identify", userId: "u-1", integrations: { Vero: { tags: { id: long, add: ["a"] } } } },
    ],
  ];

  for (const [field, event] of cases) {
    it(`refuses a ${event.type} whose ${field} is over ${VERO_MAX_FIELD_LENGTH} characters before any Vero call`, async () => {
      const { env, veroToken } = await isolatedEnv();
      const body = await expectJsonError(await postSegment(env, { messageId: "m-1", ...event }), 400);
      expect(body.error.code).toBe("invalid_event");
      expect(body.error.message).toBe(`${field} is longer than ${VERO_MAX_FIELD_LENGTH} characters (Vero's limit)`);
      expect(await vero.calls(veroToken)).toEqual([]);
    });
  }

  it(`delivers ids, emails and names of exactly ${VERO_MAX_FIELD_LENGTH} characters`, async () => {
    const { env, veroToken } = await isolatedEnv();
    const id = "x".repeat(VERO_MAX_FIELD_LENGTH);
    const email = `${"j".repeat(VERO_MAX_FIELD_LENGTH - "@example.com".length)}@example.com`;
    const response = await batch(env, {
      batch: [
        { type: "identify", messageId: "a", userId: id, traits: { email } },
        { type: "track", messageId: "b", userId: id, event: id, context: { traits: { email } } },
        { type: "alias", messageId: "c", previousId: id, userId: id },
      ],
    });
    expect(response.status, await response.text()).toBe(200);
    expect(await vero.accepted(veroToken)).toHaveLength(3);
  });
});
