/**
 * Real SDKs pointed at the bridge, as an operator would point them: their
 * events reach Vero as Segment's Vero destination would send them.
 */

import RudderAnalytics from "@rudderstack/rudder-sdk-node";
import { Analytics } from "@segment/analytics-node";
import LegacyAnalytics from "analytics-node-6";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type RunningBridge, startBridge } from "../../dev/bridge.ts";
import { DEV_SECRETS, devBindings } from "../../dev/dev-settings.ts";
import { StandInClient } from "../../dev/stand-ins/client.ts";

const vero = new StandInClient(inject("veroOrigin"));
const writeKey = DEV_SECRETS.SEGMENT_SHARED_SECRET;

let bridge: RunningBridge;
let veroToken: string;

beforeAll(async () => {
  // A tenant of its own: only this file's calls show up in what the stand-in records.
  veroToken = await vero.tenant();
  bridge = await startBridge({
    vars: { ...devBindings(inject("segmentOrigin"), inject("veroOrigin")), VERO_AUTH_TOKEN: veroToken },
    stdio: "ignore",
  });
}, 90_000);
afterAll(async () => {
  await bridge?.stop();
});

/**
 * The calls Vero received for one user, once `count` of them have arrived.
 * wrangler dev runs wrangler.toml, whose outbound routes hand the events to
 * their users' mailboxes (answering 200, as Segment's API does), which deliver.
 */
async function callsFor(userId: string, count: number) {
  const mine = (all: Awaited<ReturnType<typeof vero.calls>>) =>
    all.filter((call) => {
      const body = call.body as { id?: unknown; identity?: { id?: unknown } };
      return body.id === userId || body.identity?.id === userId;
    });
  const delivered = await vero.waitFor(veroToken, (all) => mine(all).length >= count, { timeoutMs: 45_000 });
  return mine(delivered).map((call) => ({
    method: call.method,
    path: call.path,
    status: call.status,
    body: call.body,
  }));
}

/** What an identify and a track of `userId` (as each SDK below sends them) become at Vero. */
const expectedCalls = (userId: string) => [
  {
    method: "POST",
    path: "/api/v2/users/track",
    status: 200,
    body: {
      auth_token: veroToken,
      id: userId,
      email: "jane@example.com",
      data: { email: "jane@example.com", plan: "pro", id: userId, userAgent: "Mozilla/5.0" },
    },
  },
  {
    method: "POST",
    path: "/api/v2/events/track",
    status: 200,
    body: {
      auth_token: veroToken,
      identity: { id: userId, email: "jane@example.com" },
      event_name: "Viewed product",
      data: { product_name: "Red T-shirt" },
      extras: { created_at: 1717044391, source: "segment" },
    },
  },
];

const identify = (userId: string) => ({
  userId,
  traits: { email: "jane@example.com", plan: "pro" },
  context: { userAgent: "Mozilla/5.0" },
});
const track = (userId: string) => ({
  userId,
  event: "Viewed product",
  properties: { product_name: "Red T-shirt" },
  timestamp: new Date("2024-05-30T04:46:31.000Z"),
  context: { traits: { email: "jane@example.com" } },
});

/**
 * Each SDK sends `identify(userId)` then `track(userId)`, flushes, and returns the errors it reported.
 * `apart`: the SDK sends the two in requests of their own at the same time, which no one orders.
 */
const sdks: [name: string, send: (userId: string) => Promise<unknown[]>, apart?: "apart"][] = [
  [
    "@segment/analytics-node",
    async (userId) => {
      const errors: unknown[] = [];
      const analytics = new Analytics({ writeKey, host: bridge.url, maxRetries: 0 });
      analytics.on("error", (error) => errors.push(error));
      analytics.identify(identify(userId));
      analytics.track(track(userId));
      await analytics.closeAndFlush();
      return errors;
    },
  ],
  [
    "analytics-node 6 (Segment's legacy SDK)",
    async (userId) => {
      const errors: unknown[] = [];
      const analytics = new LegacyAnalytics(writeKey, {
        host: bridge.url,
        retryCount: 0,
        errorHandler: (error) => errors.push(error),
      });
      await analytics.identify(identify(userId)).track(track(userId)).flush();
      return errors;
    },
    // Its first message goes alone and at once, the rest with the flush.
    "apart",
  ],
  [
    "@rudderstack/rudder-sdk-node, which gzips its batches",
    async (userId) => {
      const errors: unknown[] = [];
      const analytics = new RudderAnalytics(writeKey, {
        dataPlaneUrl: bridge.url,
        gzip: true,
        retryCount: 0,
        logLevel: "error",
        errorHandler: (error) => errors.push(error),
      });
      await analytics.identify(identify(userId)).track(track(userId)).flush();
      return errors;
    },
  ],
];

describe("SDKs with the bridge as their host", () => {
  for (const [index, [name, send, apart]] of sdks.entries()) {
    it(`${name}: identify and track become POST /users/track and POST /events/track`, async () => {
      const userId = `sdk-user-${index}`;
      expect(await send(userId)).toEqual([]);
      // Two requests at the same time are ordered by the bridge's receipt, to the millisecond: compared by path.
      const byPath = (calls: { path: string }[]) =>
        apart ? [...calls].sort((a, b) => a.path.localeCompare(b.path)) : calls;
      expect(byPath(await callsFor(userId, 2))).toEqual(byPath(expectedCalls(userId)));
      // The SDK's own flush and retries, then the queue and the mailbox, on a machine shared with the other projects.
    }, 60_000);
  }
});
