/** The bridge under `wrangler dev`, as `npm start` and the end-to-end tests run it. */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type RunningBridge, startBridge } from "../../dev/bridge.ts";
import { devBindings } from "../../dev/dev-settings.ts";

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
    expect(await response.json()).toMatchObject({ status: "ok", inbound: true, outbound: true });
  });
});
