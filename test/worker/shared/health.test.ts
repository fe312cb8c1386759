import { describe, expect, it } from "vitest";
import { DEV_SECRETS } from "../../../dev/dev-settings.ts";
import pkg from "../../../package.json";
import { baseEnv, callWorker } from "../helpers/env.ts";

describe("GET /health", () => {
  it("answers 200 with the version, both directions configured, and de-duplication on (LEDGER bound)", async () => {
    const response = await callWorker(new Request("http://bridge/health"));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      status: "ok",
      version: pkg.version,
      inbound: true,
      outbound: true,
      dedup: true,
      consumers: { segment: true, vero: true },
      firstEventSignatures: "refused",
    });
  });

  it("repeats BRIDGE_INSTANCE as `instance`, so that a tool that started the bridge knows it reached its own", async () => {
    const response = await callWorker(new Request("http://bridge/health"), { ...baseEnv, BRIDGE_INSTANCE: "run-42" });
    expect(await response.json()).toMatchObject({ status: "ok", instance: "run-42" });
  });

  it("says which directions are configured, and that de-duplication is off, with nothing bound at all", async () => {
    const response = await callWorker(new Request("http://bridge/health"), {});
    expect(await response.json()).toEqual({
      status: "ok",
      version: pkg.version,
      inbound: false,
      outbound: false,
      dedup: false,
      consumers: { segment: false, vero: false },
      firstEventSignatures: "refused",
      consumersNotReady: [
        "the Segment consumer is not configured: set SEGMENT_WRITE_KEY",
        "the Vero consumer is not configured: set VERO_AUTH_TOKEN or VERO_TRACKING_API_KEY",
      ],
    });
  });

  it("reports both consumers not ready, naming the fix, when the retry horizon outlasts the queues' retention", async () => {
    const response = await callWorker(new Request("http://bridge/health"), {
      ...baseEnv,
      QUEUE_RETENTION_HOURS: "24",
    });
    const health = await response.json();
    expect(health).toMatchObject({ inbound: true, outbound: true, consumers: { segment: false, vero: false } });
    expect(health).toHaveProperty("consumersNotReady", [
      expect.stringMatching(
        /^the Segment consumer is not configured: fix QUEUE_RETRY_HORIZON_HOURS \(26\) .* set it to 23 or less$/,
      ),
      expect.stringMatching(
        /^the Vero consumer is not configured: fix QUEUE_RETRY_HORIZON_HOURS \(26\) .* set it to 23 or less$/,
      ),
    ]);
  });

  it("reports the consumers ready when only the routes' secrets are missing", async () => {
    const { SEGMENT_SHARED_SECRET: _s, VERO_WEBHOOK_TOKEN: _t, ...upstreamsOnly } = baseEnv;
    const response = await callWorker(new Request("http://bridge/health"), upstreamsOnly);
    expect(await response.json()).toMatchObject({
      inbound: false,
      outbound: false,
      consumers: { segment: true, vero: true },
    });
  });

  it("reports inbound alone when only inbound is configured", async () => {
    const { SEGMENT_SHARED_SECRET: _, ...inboundOnly } = baseEnv;
    const response = await callWorker(new Request("http://bridge/health"), inboundOnly);
    expect(await response.json()).toMatchObject({ inbound: true, outbound: false });
  });

  it("names an operator-chosen secret under 32 characters, and its route and the console refuse to serve", async () => {
    const env = { ...baseEnv, VERO_WEBHOOK_TOKEN: "short-token", ADMIN_TOKEN: "short-admin" };
    const health = await (await callWorker(new Request("http://bridge/health"), env)).json();
    const why = "must be at least 32 characters (generate one with openssl rand -hex 32)";
    expect(health).toMatchObject({
      inbound: false,
      outbound: true,
      problems: [
        `inbound is not configured: fix VERO_WEBHOOK_TOKEN ${why}`,
        `admin is not configured: fix ADMIN_TOKEN ${why}`,
      ],
    });
    const webhook = await callWorker(
      new Request("http://bridge/vero/webhook?token=short-token", { method: "POST", body: "{}" }),
      env,
    );
    expect(webhook.status).toBe(503);
    expect(await webhook.text()).toContain(`VERO_WEBHOOK_TOKEN ${why}`);
    const signIn = await callWorker(new Request("http://bridge/admin/console/sign-in"), env);
    expect(signIn.status).toBe(503);
    expect(await signIn.text()).toContain(`ADMIN_TOKEN ${why}`);
  });

  it("never shows a secret", async () => {
    const text = await (await callWorker(new Request("http://bridge/health"))).text();
    for (const secret of Object.values(DEV_SECRETS)) expect(text).not.toContain(secret);
  });

  it("answers HEAD like GET, without a body", async () => {
    const response = await callWorker(new Request("http://bridge/health", { method: "HEAD" }));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("");
  });
});
