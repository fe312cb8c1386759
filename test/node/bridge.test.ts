/** The bridge under `wrangler dev`, as `npm start` and the end-to-end tests run it. */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type RunningBridge, startBridge } from "../../dev/bridge.ts";
import { DEV_SECRETS, devBindings } from "../../dev/dev-settings.ts";

describe("the bridge under wrangler dev", () => {
  let bridge: RunningBridge;
  beforeAll(async () => {
    bridge = await startBridge({ vars: devBindings(inject("segmentOrigin"), inject("veroOrigin")), stdio: "ignore" });
  }, 90_000);
  afterAll(async () => {
    await bridge?.stop();
  });

  it("answers GET /health with both directions configured", async () => {
    const response = await fetch(`${bridge.url}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: "ok", inbound: true, outbound: true, dedup: true });
  });

  it("has the ledger's schema applied with no manual step: the admin routes read it", async () => {
    const response = await fetch(`${bridge.url}/admin/dead-letters`, {
      headers: { Authorization: `Bearer ${DEV_SECRETS.ADMIN_TOKEN}` },
    });
    expect(await response.json()).toEqual({ ok: true, letters: [], total: 0 });
  });
});
