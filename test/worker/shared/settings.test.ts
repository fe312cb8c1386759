import { describe, expect, it } from "vitest";
import { parseSettings, settingsFor } from "../../../src/shared/settings.ts";

// Operator-chosen secrets of the minimum 32 characters; keys Segment and Vero issue are taken as issued.
const TOK = "tok-0123456789abcdef0123456789abc";
const SHH = "shh-0123456789abcdef0123456789abc";
const OLD = "old-0123456789abcdef0123456789abc";
const NEW = "new-0123456789abcdef0123456789abc";
const inbound = { SEGMENT_WRITE_KEY: "wk", VERO_WEBHOOK_TOKEN: TOK };
const outbound = { SEGMENT_SHARED_SECRET: SHH, VERO_AUTH_TOKEN: "vat" };

describe("settings", () => {
  it("applies the contract's defaults for the API hosts", () => {
    const settings = parseSettings({ ...inbound, ...outbound });
    expect(settings.inbound).toEqual({
      ready: true,
      settings: {
        segmentWriteKey: "wk",
        segmentApiHost: "https://api.segment.io",
        webhookTokens: [TOK],
        droppedTypes: [],
      },
    });
    expect(settings.outbound).toEqual({
      ready: true,
      settings: {
        veroApiUrl: "https://api.getvero.com/api/v2",
        veroCredential: { auth_token: "vat" },
        trackConcurrency: 1,
        sharedSecrets: [SHH],
        acceptFirstEventSignature: false,
        filters: [],
        anonymousIds: false,
      },
    });
  });

  it("reads VERO_ANONYMOUS_IDS, off unless set, and VERO_WEBHOOK_TYPES_DROPPED as a list of Vero types", () => {
    expect(parseSettings({ ...outbound, VERO_ANONYMOUS_IDS: "true" }).outbound).toMatchObject({
      settings: { anonymousIds: true },
    });
    expect(parseSettings({ ...outbound, VERO_ANONYMOUS_IDS: "yes please" }).outbound).toMatchObject({
      ready: false,
      invalid: ['VERO_ANONYMOUS_IDS must be "true" or "false"'],
    });
    expect(parseSettings({ ...inbound, VERO_WEBHOOK_TYPES_DROPPED: " sent, delivered ," }).inbound).toMatchObject({
      settings: { droppedTypes: ["sent", "delivered"] },
    });
    expect(parseSettings({ ...inbound, VERO_WEBHOOK_TYPES_DROPPED: "Email Sent" }).inbound).toMatchObject({
      ready: false,
      invalid: ["VERO_WEBHOOK_TYPES_DROPPED must list Vero webhook types such as sent,delivered"],
    });
  });

  it("compiles DESTINATION_FILTERS, as text or as a wrangler.toml value, and names an invalid filter", () => {
    const filters = [{ title: "No pages", if: 'type = "page"', actions: [{ type: "DROP" }], enabled: true }];
    for (const value of [JSON.stringify(filters), filters])
      expect(parseSettings({ ...outbound, DESTINATION_FILTERS: value as unknown as string }).outbound).toMatchObject({
        ready: true,
        settings: { filters: [{ title: "No pages", actions: [{ type: "DROP" }] }] },
      });
    const broken = [{ ...filters[0], if: 'type = "page" and' }];
    expect(parseSettings({ ...outbound, DESTINATION_FILTERS: JSON.stringify(broken) }).outbound).toEqual({
      ready: false,
      missing: [],
      invalid: ['DESTINATION_FILTERS filter 1 ("No pages"): if unexpected the end'],
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
        settings: {
          veroApiUrl: "https://api.getvero.com/api/v2",
          veroCredential: { auth_token: "vat" },
          trackConcurrency: 1,
        },
      },
    });
    expect(parseSettings({}).consumers).toEqual({
      segment: { ready: false, missing: ["SEGMENT_WRITE_KEY"], invalid: [] },
      vero: { ready: false, missing: ["VERO_AUTH_TOKEN or VERO_TRACKING_API_KEY"], invalid: [] },
    });
  });

  it("reads SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE, off unless set, and refuses a value that is not a boolean", () => {
    expect(parseSettings(outbound).outbound).toMatchObject({ settings: { acceptFirstEventSignature: false } });
    expect(parseSettings({ ...outbound, SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: "true" }).outbound).toMatchObject({
      settings: { acceptFirstEventSignature: true },
    });
    expect(parseSettings({ ...outbound, SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: "perhaps" }).outbound).toMatchObject({
      ready: false,
      invalid: ['SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE must be "true" or "false"'],
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
    expect(parseSettings({ ...inbound, VERO_WEBHOOK_TOKEN: `${OLD}, ${NEW}` }).inbound).toMatchObject({
      settings: { webhookTokens: [OLD, NEW] },
    });
    expect(parseSettings({ ...inbound, VERO_WEBHOOK_TOKEN: `${OLD},${NEW},${TOK}` }).inbound).toEqual({
      ready: false,
      missing: [],
      invalid: ["VERO_WEBHOOK_TOKEN holds more than two values"],
    });
  });

  it("sends VERO_TRACKING_API_KEY as tracking_api_key, preferred over VERO_AUTH_TOKEN", () => {
    expect(parseSettings({ SEGMENT_SHARED_SECRET: SHH, VERO_TRACKING_API_KEY: "tak" }).outbound).toMatchObject({
      settings: { veroCredential: { tracking_api_key: "tak" } },
    });
    expect(parseSettings({ ...outbound, VERO_TRACKING_API_KEY: "tak" }).outbound).toMatchObject({
      settings: { veroCredential: { tracking_api_key: "tak" } },
    });
  });

  it("takes VERO_ACCOUNT (the mailboxes' account name) and VERO_TRACK_CONCURRENCY (default 1, at most 6)", () => {
    expect(parseSettings(outbound).outbound).toMatchObject({ settings: { trackConcurrency: 1 } });
    expect(
      parseSettings({ ...outbound, VERO_ACCOUNT: "eu-project", VERO_TRACK_CONCURRENCY: "4" }).outbound,
    ).toMatchObject({ settings: { veroAccount: "eu-project", trackConcurrency: 4 } });
    expect(parseSettings({ ...outbound, VERO_TRACK_CONCURRENCY: "7" }).outbound).toEqual({
      ready: false,
      missing: [],
      invalid: ["VERO_TRACK_CONCURRENCY must be at most 6"],
    });
  });

  it("refuses a Vero URL that is not http(s)", () => {
    expect(parseSettings({ ...outbound, VERO_API_URL: "ftp://vero" }).outbound).toEqual({
      ready: false,
      missing: [],
      invalid: ["VERO_API_URL must be an http(s) URL"],
    });
  });

  it("refuses an operator-chosen secret under 32 characters, naming it, and takes issued keys as issued", () => {
    const short = "x".repeat(31);
    const why = "must be at least 32 characters (generate one with openssl rand -hex 32)";
    const settings = parseSettings({
      ...inbound,
      ...outbound,
      VERO_WEBHOOK_TOKEN: short,
      SEGMENT_SHARED_SECRET: `${SHH},${short}`,
      ADMIN_TOKEN: `${short},${short}`,
    });
    expect(settings.inbound).toEqual({ ready: false, missing: [], invalid: [`VERO_WEBHOOK_TOKEN ${why}`] });
    expect(settings.outbound).toEqual({ ready: false, missing: [], invalid: [`SEGMENT_SHARED_SECRET ${why}`] });
    expect(settings.admin).toEqual({ ready: false, missing: [], invalid: [`ADMIN_TOKEN ${why}`] });
    // SEGMENT_WRITE_KEY and VERO_AUTH_TOKEN are short here: Segment and Vero issue them.
    expect(parseSettings({ ...inbound, ...outbound, ADMIN_TOKEN: "a".repeat(32) }).admin.ready).toBe(true);
    expect(settings.consumers.segment.ready && settings.consumers.vero.ready).toBe(true);
  });

  it("refuses an ADMIN_TOKEN that cannot travel as a bearer token, naming the characters allowed", () => {
    expect(parseSettings({ ADMIN_TOKEN: `${"a".repeat(32)}!` }).admin).toEqual({
      ready: false,
      missing: [],
      invalid: ["ADMIN_TOKEN must use only letters, digits and ._~+/-= (a bearer token)"],
    });
  });

  it("refuses QUEUE_RETRY_BASE_SECONDS=0, which would spend all 100 retries in seconds, and keeps the 5 s default", () => {
    const { policy, invalid } = parseSettings({ QUEUE_RETRY_BASE_SECONDS: "0" } as never).retry;
    expect(policy.baseSeconds).toBe(5);
    expect(invalid).toEqual(["QUEUE_RETRY_BASE_SECONDS must be at least 1"]);
  });

  it("reads COUNTS_REPORT_SECONDS as whole seconds from 1 to 3600, and falls back to the minute when invalid", () => {
    const ms = (value?: string) =>
      parseSettings((value === undefined ? {} : { COUNTS_REPORT_SECONDS: value }) as never).countsReportMs;
    expect(ms()).toBe(60_000);
    expect(ms("5")).toBe(5_000);
    expect(ms("3600")).toBe(3_600_000);
    for (const invalid of ["0", "3601", "1.5", "soon"]) expect(ms(invalid), invalid).toBe(60_000);
  });

  it("parses once per env object", () => {
    const env = { ...inbound };
    expect(settingsFor(env)).toBe(settingsFor(env));
    expect(settingsFor({ ...inbound })).not.toBe(settingsFor(env));
  });
});
