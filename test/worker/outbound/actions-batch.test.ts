/**
 * The largest batch Segment's Webhooks (Actions) destination sends: 4,000
 * events of typical size (its Send action's default payload, the whole
 * event as analytics.js builds it) in one JSON array to /segment.
 */
import { describe, expect, it } from "vitest";
import { WEBHOOK_MAX_BODY_BYTES } from "../../../src/outbound/contract.ts";
import type { Env } from "../../../src/shared/env.ts";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";
import { basic, callWorker, expectJsonError, isolatedEnv } from "../helpers/env.ts";
import { recordingQueue } from "../helpers/recording-queue.ts";

const SECRET = "dev-segment-shared-secret-for-local-use";
const ACTIONS_MAX_BATCH = 4_000;
/** The Workers Free plan's subrequests per invocation: every sendBatch is one. */
const FREE_PLAN_SUBREQUESTS = 50;

/** An Order Completed as analytics.js sends it, about 1.6 KB. */
function typicalEvent(index: number): Record<string, unknown> {
  const id = String(index).padStart(6, "0");
  return {
    type: "track",
    event: "Order Completed",
    messageId: `ajs-next-1717044391000-${id}-5c1e1f0a-3d4b-4a8e-9a55`,
    anonymousId: `4f0a1c2e-9b7d-4e61-8c3a-${id}0f1e2d3c`,
    userId: `user-${index % 500}`,
    properties: {
      order_id: `order-${id}`,
      total: 42.5,
      revenue: 38.64,
      currency: "EUR",
      products: [
        {
          product_id: "507f1f77bcf86cd799439011",
          sku: "45790-32",
          name: "Monopoly: 3rd Edition",
          price: 19,
          quantity: 1,
        },
        { product_id: "505bd76785ebb509fc183733", sku: "46493-32", name: "Uno Card Game", price: 3, quantity: 2 },
      ],
    },
    context: {
      library: { name: "analytics.js", version: "next-1.70.0" },
      ip: "203.0.113.7",
      locale: "en-GB",
      page: {
        path: "/checkout/complete",
        referrer: "https://shop.example.com/checkout/payment",
        search: "?step=done",
        title: "Thank you for your order",
        url: "https://shop.example.com/checkout/complete?step=done",
      },
      userAgent:
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36",
      userAgentData: { brands: [{ brand: "Chromium", version: "125" }], mobile: false, platform: "macOS" },
      campaign: { name: "summer-sale", source: "newsletter", medium: "email" },
      traits: { email: `buyer-${index % 500}@example.com` },
    },
    integrations: {},
    originalTimestamp: "2024-05-30T04:46:30.812Z",
    receivedAt: "2024-05-30T04:46:31.402Z",
    sentAt: "2024-05-30T04:46:30.830Z",
    timestamp: "2024-05-30T04:46:31.384Z",
    version: 2,
  };
}

const events = Array.from({ length: ACTIONS_MAX_BATCH }, (_, index) => typicalEvent(index));
const body = JSON.stringify(events);

async function queued(overrides: Partial<Env> = {}) {
  const { env } = await isolatedEnv(overrides, { queued: true });
  const recorder = recordingQueue();
  return { env: { ...env, VERO_QUEUE: recorder.queue }, ...recorder };
}

const postArray = (env: Env, headers: Record<string, string>) =>
  callWorker(new Request("http://bridge/segment", { method: "POST", body, headers }), env);

/** The X-Signature Webhooks (Actions) sends with a batch: over its first event alone. */
const firstEventSignature = () => hmacSha1Hex(SECRET, JSON.stringify(events[0]));

describe("a 4,000-event Webhooks (Actions) batch on /segment", () => {
  it("is of typical size: over 1 KB per event, within the 10 MiB body limit", () => {
    const bytes = new TextEncoder().encode(body).byteLength;
    expect(bytes / ACTIONS_MAX_BATCH).toBeGreaterThan(1_024);
    expect(bytes).toBeLessThanOrEqual(WEBHOOK_MAX_BODY_BYTES);
  });

  it("with Basic: every event queued, in sendBatch calls each within Queues' limits and together within the Free plan's 50 subrequests", async () => {
    const { env, sent, sendBatchCalls } = await queued();
    const response = await postArray(env, { Authorization: basic(SECRET), "content-type": "application/json" });
    const text = await response.text();
    expect(response.status, text.slice(0, 500)).toBe(202);
    const { results } = JSON.parse(text) as { results: { outcome: string }[] };
    expect(results.filter((result) => result.outcome === "queued")).toHaveLength(ACTIONS_MAX_BATCH);
    expect(sent).toHaveLength(ACTIONS_MAX_BATCH);
    expect(sendBatchCalls()).toBeLessThanOrEqual(FREE_PLAN_SUBREQUESTS);
  });

  it("with only Segment's first-event X-Signature: refused by default (401), nothing queued", async () => {
    const { env, sent } = await queued();
    const response = await postArray(env, { "X-Signature": firstEventSignature() });
    expect((await expectJsonError(response, 401)).message).toMatch(/needs Authorization/);
    expect(sent).toEqual([]);
  });

  it("with only Segment's first-event X-Signature and SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE=true: every event queued", async () => {
    const { env, sent } = await queued({ SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: "true" });
    const response = await postArray(env, { "X-Signature": firstEventSignature() });
    expect(response.status, (await response.clone().text()).slice(0, 500)).toBe(202);
    expect(sent).toHaveLength(ACTIONS_MAX_BATCH);
  });
});
