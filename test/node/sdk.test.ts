/** An official Segment SDK pointed at the bridge: its events reach Vero as the Vero destination would send them. */
import { Analytics } from "@segment/analytics-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type RunningBridge, startBridge } from "../../dev/bridge.ts";
import { DEV_SECRETS, devBindings } from "../../dev/dev-settings.ts";
import { StandInClient } from "../../dev/stand-ins/client.ts";

const vero = new StandInClient(inject("veroOrigin"));

describe("@segment/analytics-node with the bridge as its host", () => {
  let bridge: RunningBridge;
  let veroToken: string;

  beforeAll(async () => {
    // A tenant of its own: only this test's calls show up in what the stand-in records.
    veroToken = await vero.tenant();
    bridge = await startBridge({
      vars: { ...devBindings(inject("segmentOrigin"), inject("veroOrigin")), VERO_AUTH_TOKEN: veroToken },
      stdio: "ignore",
    });
  }, 90_000);
  afterAll(async () => {
    await bridge?.stop();
  });

  it("delivers identify and track as POST /users/track and POST /events/track", async () => {
    const analytics = new Analytics({ writeKey: DEV_SECRETS.SEGMENT_SHARED_SECRET, host: bridge.url, maxRetries: 0 });
    const errors: unknown[] = [];
    analytics.on("error", (error) => errors.push(error));

    analytics.identify({
      userId: "324LKJF",
      traits: { email: "jane@example.com", plan: "pro" },
      context: { userAgent: "Mozilla/5.0" },
    });
    analytics.track({
      userId: "324LKJF",
      event: "Viewed product",
      properties: { product_name: "Red T-shirt" },
      timestamp: new Date("2024-05-30T04:46:31.000Z"),
      context: { traits: { email: "jane@example.com" } },
    });
    await analytics.closeAndFlush();

    expect(errors).toEqual([]);
    // wrangler dev binds the queues (wrangler.toml), so the bridge answers 202 and its consumer delivers.
    const delivered = await vero.waitFor(veroToken, (all) => all.length >= 2, { timeoutMs: 20_000 });
    const calls = delivered.map((call) => ({
      method: call.method,
      path: call.path,
      status: call.status,
      body: call.body,
    }));
    expect(calls).toEqual([
      {
        method: "POST",
        path: "/api/v2/users/track",
        status: 200,
        body: {
          auth_token: veroToken,
          id: "324LKJF",
          email: "jane@example.com",
          data: { email: "jane@example.com", plan: "pro", id: "324LKJF", userAgent: "Mozilla/5.0" },
        },
      },
      {
        method: "POST",
        path: "/api/v2/events/track",
        status: 200,
        body: {
          auth_token: veroToken,
          identity: { id: "324LKJF", email: "jane@example.com" },
          event_name: "Viewed product",
          data: { product_name: "Red T-shirt" },
          extras: { created_at: 1717044391, source: "segment" },
        },
      },
    ]);
  }, 30_000);
});
