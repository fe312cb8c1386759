/** The alerts' pure parts: the body per format, the state transitions, and the settings' fallbacks. */
import { describe, expect, it } from "vitest";
import type { Condition } from "../../../src/admin/alerts/conditions.ts";
import { bodyOf, chatBody, pagerDutyBody } from "../../../src/admin/alerts/format.ts";
import { transition } from "../../../src/admin/alerts/transitions.ts";
import type { Env } from "../../../src/shared/env.ts";
import { ALERT_DEFAULTS, parseSettings } from "../../../src/shared/settings.ts";

const parseAlertSettings = (env: Partial<Env>) => parseSettings(env as Env).alerts;

const condition: Condition = {
  key: "failure-rate:outbound",
  summary: "Outbound (Segment → Vero): 60% of deliveries failed over the last 15 minutes (12 of 20)",
  details: ["x".repeat(5000)],
  link: "/admin#flow",
  fresh: true,
};
const at = new Date("2030-01-01T00:00:00.000Z");

describe("alert bodies", () => {
  it("chat: the same text as Slack's `text` and Discord's `content`, within Discord's 2000 characters", () => {
    const body = chatBody({ kind: "alert", condition, at }, "https://bridge.example.com");
    expect(body.text).toBe(body.content);
    expect(body.content.length).toBeLessThanOrEqual(2000);
    expect(body.text).toContain("60% of deliveries failed");
  });

  it("pagerduty: an Events v2 trigger, resolved by the same dedup key, with the console link", () => {
    const trigger = pagerDutyBody({ kind: "alert", condition, at }, "https://bridge.example.com", "rk");
    const resolve = pagerDutyBody({ kind: "resolved", condition, at }, "https://bridge.example.com", "rk");
    expect(trigger).toMatchObject({
      routing_key: "rk",
      event_action: "trigger",
      payload: { severity: "error", source: "bridge.example.com" },
      links: [{ href: "https://bridge.example.com/admin#flow" }],
    });
    expect(resolve.event_action).toBe("resolve");
    expect(resolve.dedup_key).toBe(trigger.dedup_key);
  });

  it("json: the chat fields plus the condition's facts", () => {
    const body = bodyOf({ kind: "repeat", condition, at }, { format: "json" });
    expect(body).toMatchObject({ condition: "failure-rate:outbound", kind: "repeat", link: "/admin#flow" });
    expect(typeof body.text).toBe("string");
  });
});

describe("transitions", () => {
  const hour = 3_600_000;
  const later = (ms: number) => new Date(at.getTime() + ms);

  it("sends on start, not again within the repeat interval, again past it, and resolved once on clearing", () => {
    const start = transition("failure-rate:outbound", undefined, condition, at, hour);
    expect(start?.send).toBe("alert");
    expect(transition("failure-rate:outbound", start?.next, condition, later(hour - 1), hour)).toBeUndefined();
    const again = transition("failure-rate:outbound", start?.next, condition, later(hour), hour);
    expect(again?.send).toBe("repeat");
    const cleared = transition("failure-rate:outbound", again?.next, undefined, later(2 * hour), hour);
    expect(cleared?.send).toBe("resolved");
    expect(transition("failure-rate:outbound", cleared?.next, undefined, later(3 * hour), hour)).toBeUndefined();
  });

  it("does not send a condition with nothing new (old dead letters only)", () => {
    expect(transition("dead-letters", undefined, { ...condition, fresh: false }, at, hour)).toBeUndefined();
  });
});

describe("alert settings", () => {
  it("fall back to the defaults on bad values and say which", () => {
    const settings = parseAlertSettings({ ALERT_FAILURE_RATE: "2", ALERT_REPEAT_MINUTES: "soon" });
    expect(settings.failureRate).toBe(ALERT_DEFAULTS.failureRate);
    expect(settings.repeatMinutes).toBe(ALERT_DEFAULTS.repeatMinutes);
    expect(settings.invalid).toHaveLength(2);
    expect(settings.webhook).toBeUndefined();
  });

  it("turn alerts off on a URL that is not http(s), without quoting it", () => {
    const settings = parseAlertSettings({ ALERT_WEBHOOK_URL: "ftp://secret-path" });
    expect(settings.webhook).toBeUndefined();
    expect(settings.invalid.join()).not.toContain("secret-path");
  });

  it("keep only the host of the webhook to show", () => {
    const settings = parseAlertSettings({ ALERT_WEBHOOK_URL: "https://hooks.slack.com/services/T0/B0/XYZ" });
    expect(settings.webhook?.host).toBe("hooks.slack.com");
  });
});
