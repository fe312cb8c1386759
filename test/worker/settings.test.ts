import { describe, expect, it } from "vitest";
import { parseSettings, settingsFor } from "../../src/shared/settings.ts";

const inbound = { SEGMENT_WRITE_KEY: "wk", VERO_WEBHOOK_TOKEN: "tok" };
const outbound = { SEGMENT_SHARED_SECRET: "shh", VERO_AUTH_TOKEN: "vat" };

describe("settings", () => {
  it("applies the contract's defaults for the API hosts", () => {
    const settings = parseSettings({ ...inbound, ...outbound });
    expect(settings.inbound).toEqual({
      ready: true,
      settings: { segmentWriteKey: "wk", segmentApiHost: "https://api.segment.io", webhookTokens: ["tok"] },
    });
    expect(settings.outbound).toEqual({
      ready: true,
      settings: {
        veroApiUrl: "https://api.getvero.com/api/v2",
        veroCredential: { auth_token: "vat" },
        sharedSecrets: ["shh"],
      },
    });
  });

  it("gives each consumer its upstream's settings alone: the routes' secrets are not needed", () => {
    const settings = parseSettings({ SEGMENT_WRITE_KEY: "wk", VERO_AUTH_TOKEN: "vat" });
    expect(settings.inbound).toMatchObject({ ready: false, missing: ["VERO_WEBHOOK_TOKEN"] });
    expect(settings.outbound).toMatchObject({ ready: false, missing: ["SEGMENT_SHARED_SECRET"] });
    expect(settings.consumers).toEqual({
      segment: { ready: true, settings: { segmentWriteKey: "wk", segmentApiHost: "https://api.segment.io" } },
      vero: {
        ready: true,
        settings: { veroApiUrl: "https://api.getvero.com/api/v2", veroCredential: { auth_token: "vat" } },
      },
    });
    expect(parseSettings({}).consumers).toEqual({
      segment: { ready: false, missing: ["SEGMENT_WRITE_KEY"], invalid: [] },
      vero: { ready: false, missing: ["VERO_AUTH_TOKEN or VERO_TRACKING_API_KEY"], invalid: [] },
    });
  });

  it("trims secrets and a trailing slash on URLs", () => {
    const settings = parseSettings({
      ...inbound,
      SEGMENT_WRITE_KEY: "wk\n",
      SEGMENT_API_HOST: "https://events.eu1.segmentapis.com/",
    });
    expect(settings.inbound).toMatchObject({
      settings: { segmentWriteKey: "wk", segmentApiHost: "https://events.eu1.segmentapis.com" },
    });
  });

  it("holds two comma-separated values during a rotation, and refuses three", () => {
    expect(parseSettings({ ...inbound, VERO_WEBHOOK_TOKEN: "old, new" }).inbound).toMatchObject({
      settings: { webhookTokens: ["old", "new"] },
    });
    expect(parseSettings({ ...inbound, VERO_WEBHOOK_TOKEN: "a,b,c" }).inbound).toEqual({
      ready: false,
      missing: [],
      invalid: ["VERO_WEBHOOK_TOKEN holds more than two values"],
    });
  });

  it("sends VERO_TRACKING_API_KEY as tracking_api_key, preferred over VERO_AUTH_TOKEN", () => {
    expect(parseSettings({ SEGMENT_SHARED_SECRET: "s", VERO_TRACKING_API_KEY: "tak" }).outbound).toMatchObject({
      settings: { veroCredential: { tracking_api_key: "tak" } },
    });
    expect(parseSettings({ ...outbound, VERO_TRACKING_API_KEY: "tak" }).outbound).toMatchObject({
      settings: { veroCredential: { tracking_api_key: "tak" } },
    });
  });

  it("refuses a Vero URL that is not http(s)", () => {
    expect(parseSettings({ ...outbound, VERO_API_URL: "ftp://vero" }).outbound).toEqual({
      ready: false,
      missing: [],
      invalid: ["VERO_API_URL must be an http(s) URL"],
    });
  });

  it("parses once per env object", () => {
    const env = { ...inbound };
    expect(settingsFor(env)).toBe(settingsFor(env));
    expect(settingsFor({ ...inbound })).not.toBe(settingsFor(env));
  });
});
