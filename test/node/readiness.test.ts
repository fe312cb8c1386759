/**
 * GET /health/ready under wrangler dev: 200 with every direction configured
 * and the local ledger migrated, 503 naming the missing setting when a
 * direction is not configured.
 */
import { afterAll, describe, expect, inject, it } from "vitest";
import { type RunningBridge, startBridge } from "../../dev/bridge.ts";
import { devBindings } from "../../dev/dev-settings.ts";
import { bridgeWithTenants } from "./tenant-bridge.ts";

const started: RunningBridge[] = [];
afterAll(async () => {
  await Promise.all(started.map((bridge) => bridge.stop()));
});

describe("readiness under wrangler dev", () => {
  it("answers 200 when all checks hold", async () => {
    const { bridge } = await bridgeWithTenants("readiness-admin-token-for-the-node-test");
    started.push(bridge);
    const response = await fetch(`${bridge.url}/health/ready`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: "ready" });
  }, 120_000);

  it("answers 503 with the reason when a direction is not configured, and /health stays 200", async () => {
    const { SEGMENT_SHARED_SECRET: _, ...inboundOnly } = devBindings(inject("segmentOrigin"), inject("veroOrigin"));
    const bridge = await startBridge({ vars: inboundOnly, stdio: "ignore" });
    started.push(bridge);
    const response = await fetch(`${bridge.url}/health/ready`);
    expect(response.status).toBe(503);
    const body = (await response.json()) as { error: { details: { reasons: string[] } } };
    expect(body.error.details.reasons).toEqual(["outbound is not configured: set SEGMENT_SHARED_SECRET"]);
    expect((await fetch(`${bridge.url}/health`)).status).toBe(200);
  }, 120_000);

  it("names the command that applies the ledger's migrations, not D1's `no such table`, under a wrangler dev whose local ledger has none", async () => {
    const bridge = await startBridge({
      vars: devBindings(inject("segmentOrigin"), inject("veroOrigin")),
      stdio: "ignore",
      migrate: false,
    });
    started.push(bridge);
    const response = await fetch(`${bridge.url}/health/ready`);
    expect(response.status).toBe(503);
    const text = await response.text();
    expect(text).not.toMatch(/no such table/i);
    const body = JSON.parse(text) as { error: { details: { reasons: string[] } } };
    expect(body.error.details.reasons).toEqual([
      expect.stringContaining("npx wrangler d1 migrations apply LEDGER --local"),
    ]);
  }, 120_000);
});
