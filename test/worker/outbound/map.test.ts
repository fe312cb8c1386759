/** The pure mapping: one Segment event in, the exact Vero requests out (docs/outbound.md). */
import { describe, expect, it } from "vitest";
import { orderingKey } from "../../../src/outbound/job.ts";
import { type MappedEvent, mapSegmentEvent } from "../../../src/outbound/map.ts";
import { parseSegmentBody, parseSegmentEvent, type SegmentEventType } from "../../../src/outbound/schema.ts";
import alias from "../../fixtures/segment/alias.json";
import group from "../../fixtures/segment/group.json";
import identify from "../../fixtures/segment/identify.json";
import identifyWithTags from "../../fixtures/segment/identify_with_tags.json";
import track from "../../fixtures/segment/track.json";
import unsubscribe from "../../fixtures/segment/unsubscribe.json";

const receivedAt = new Date("2024-06-01T00:00:00.000Z");
const receivedAtSeconds = 1717200000;

function map(input: unknown, impliedType?: SegmentEventType, anonymousIds = false): MappedEvent {
  const parsed = parseSegmentEvent(input, impliedType);
  if (!parsed.ok) return { outcome: "invalid", error: parsed.error };
  return mapSegmentEvent(parsed.event, { receivedAt, anonymousIds });
}

function requestsOf(input: unknown, { anonymousIds = false } = {}) {
  const mapped = map(input, undefined, anonymousIds);
  if (mapped.outcome !== "send") throw new Error(`expected requests, got ${JSON.stringify(mapped)}`);
  return mapped.requests;
}

function errorOf(input: unknown): string {
  const mapped = map(input);
  if (mapped.outcome !== "invalid") throw new Error(`expected invalid, got ${JSON.stringify(mapped)}`);
  return mapped.error;
}

describe("identify", () => {
  it("becomes POST /users/track with the traits, the userId as id and the userAgent as data, the email from traits", () => {
    expect(requestsOf(identify)).toEqual([
      {
        method: "POST",
        path: "/users/track",
        body: {
          id: "324LKJF",
          email: "jane@example.com",
          data: {
            email: "jane@example.com",
            name: "Jane",
            plan: "pro",
            order_completed_last_30days: true,
            id: "324LKJF",
            userAgent: "Mozilla/5.0",
          },
        },
      },
    ]);
  });

  it("uses a userId that is an email as the email", () => {
    expect(requestsOf({ type: "identify", userId: "jane@example.com", traits: { plan: "pro" } })).toEqual([
      {
        method: "POST",
        path: "/users/track",
        body: { id: "jane@example.com", email: "jane@example.com", data: { plan: "pro", id: "jane@example.com" } },
      },
    ]);
  });

  it("sends no email when neither the traits nor the userId carry one", () => {
    expect(requestsOf({ type: "identify", userId: "324LKJF", traits: { plan: "pro" } })).toEqual([
      { method: "POST", path: "/users/track", body: { id: "324LKJF", data: { plan: "pro", id: "324LKJF" } } },
    ]);
  });

  it("may go by email alone", () => {
    expect(requestsOf({ type: "identify", anonymousId: "anon-1", traits: { email: "jane@example.com" } })).toEqual([
      {
        method: "POST",
        path: "/users/track",
        body: { email: "jane@example.com", data: { email: "jane@example.com" } },
      },
    ]);
  });

  it("passes Engage audience traits through as traits", () => {
    const [request] = requestsOf({ type: "identify", userId: "u-1", traits: { order_completed_last_30days: false } });
    expect(request?.body.data).toEqual({ order_completed_last_30days: false, id: "u-1" });
  });

  it("sends a numeric userId as a string", () => {
    const [request] = requestsOf({ type: "identify", userId: 12345, traits: {} });
    expect(request?.body).toEqual({ id: "12345", data: { id: "12345" } });
  });

  it("is invalid with neither a userId nor an email", () => {
    expect(errorOf({ type: "identify", anonymousId: "anon-1", traits: { name: "Jane" } })).toBe("no userId or email");
  });
});

describe("track", () => {
  it("becomes POST /events/track with the identity, properties as data, created_at and source", () => {
    expect(requestsOf(track)).toEqual([
      {
        method: "POST",
        path: "/events/track",
        body: {
          identity: { id: "324LKJF", email: "jane@example.com" },
          event_name: "Viewed product",
          data: {
            product_name: "Red T-shirt",
            product_url: "http://www.yourdomain.com/products/red-t-shirt",
          },
          extras: { created_at: 1717044391, source: "segment" },
        },
      },
    ]);
  });

  it("leaves the identity without email when context.traits has none, and keeps properties.email in data", () => {
    expect(
      requestsOf({
        type: "track",
        userId: "u-1",
        event: "Signed Up",
        timestamp: "2014-01-01T00:00:00.000Z",
        properties: { email: "other@example.com", plan: "pro" },
      }),
    ).toEqual([
      {
        method: "POST",
        path: "/events/track",
        body: {
          identity: { id: "u-1" },
          event_name: "Signed Up",
          data: { email: "other@example.com", plan: "pro" },
          extras: { created_at: 1388534400, source: "segment" },
        },
      },
    ]);
  });

  it("dates an event without a timestamp at its receipt", () => {
    const [request] = requestsOf({ type: "track", userId: "u-1", event: "Signed Up" });
    expect(request?.body.extras).toEqual({ created_at: receivedAtSeconds, source: "segment" });
  });

  it("is invalid without an event name", () => {
    expect(errorOf({ type: "track", userId: "u-1" })).toBe("track needs an event name");
  });

  it("is invalid with a timestamp that is not a date", () => {
    expect(errorOf({ type: "track", userId: "u-1", event: "x", timestamp: "yesterday" })).toBe(
      "timestamp must be an ISO 8601 date",
    );
  });

  it("is invalid by email alone, naming why", () => {
    expect(errorOf({ type: "track", event: "x", context: { traits: { email: "jane@example.com" } } })).toBe(
      "no userId: track needs one (only identify and group may go by email alone)",
    );
  });

  it("is invalid with neither a userId nor an email", () => {
    expect(errorOf({ type: "track", anonymousId: "anon-1", event: "x" })).toBe("no userId or email");
  });
});

describe("unsubscribe and resubscribe", () => {
  it("unsubscribes properties.id on an Unsubscribe event", () => {
    expect(requestsOf(unsubscribe)).toEqual([
      {
        method: "POST",
        path: "/users/unsubscribe",
        body: { id: "12345", extras: { created_at: 1717044391, source: "segment" } },
      },
    ]);
  });

  it("matches unsubscribe anywhere in the event name, in any case, and falls back to the userId", () => {
    expect(
      requestsOf({
        type: "track",
        userId: "u-1",
        event: "User UNSUBSCRIBED from emails",
        timestamp: "2014-01-01T00:00:00.000Z",
      }),
    ).toEqual([
      {
        method: "POST",
        path: "/users/unsubscribe",
        body: { id: "u-1", extras: { created_at: 1388534400, source: "segment" } },
      },
    ]);
  });

  it("resubscribes on an event whose name contains resubscribe", () => {
    expect(requestsOf({ type: "track", userId: "u-1", event: "Email Resubscribed", properties: { id: 42 } })).toEqual([
      {
        method: "POST",
        path: "/users/resubscribe",
        body: { id: "42", extras: { created_at: receivedAtSeconds, source: "segment" } },
      },
    ]);
  });

  it("may go by properties.id alone", () => {
    expect(requestsOf({ type: "track", event: "Unsubscribe", properties: { id: "12345" } })).toEqual([
      {
        method: "POST",
        path: "/users/unsubscribe",
        body: { id: "12345", extras: { created_at: receivedAtSeconds, source: "segment" } },
      },
    ]);
  });
});

describe("page and screen", () => {
  it("becomes a viewed_page event with the properties as data", () => {
    expect(
      requestsOf({
        type: "page",
        userId: "u-1",
        name: "Pricing",
        timestamp: "2014-01-01T00:00:00.000Z",
        properties: { url: "https://example.com/pricing", title: "Pricing" },
      }),
    ).toEqual([
      {
        method: "POST",
        path: "/events/track",
        body: {
          identity: { id: "u-1" },
          event_name: "viewed_page",
          data: { url: "https://example.com/pricing", title: "Pricing" },
          extras: { created_at: 1388534400, source: "segment" },
        },
      },
    ]);
  });

  it("becomes a viewed_screen event with the identity's email from context.traits", () => {
    expect(
      requestsOf({
        type: "screen",
        userId: "u-1",
        name: "Home",
        timestamp: "2014-01-01T00:00:00.000Z",
        context: { traits: { email: "jane@example.com" } },
        properties: { variation: "blue" },
      }),
    ).toEqual([
      {
        method: "POST",
        path: "/events/track",
        body: {
          identity: { id: "u-1", email: "jane@example.com" },
          event_name: "viewed_screen",
          data: { variation: "blue" },
          extras: { created_at: 1388534400, source: "segment" },
        },
      },
    ]);
  });
});

describe("group, alias and delete", () => {
  it("sets the group traits as the user's group property", () => {
    expect(requestsOf(group)).toEqual([
      {
        method: "PUT",
        path: "/users/edit",
        body: { id: "324LKJF", changes: { group: { name: "Acme", plan: "enterprise" } } },
      },
    ]);
  });

  it("takes email out of the group traits and may go by it alone", () => {
    expect(requestsOf({ type: "group", groupId: "g", traits: { email: "jane@example.com", name: "Acme" } })).toEqual([
      { method: "PUT", path: "/users/edit", body: { email: "jane@example.com", changes: { group: { name: "Acme" } } } },
    ]);
  });

  it("reidentifies previousId as userId on alias", () => {
    expect(requestsOf(alias)).toEqual([
      { method: "PUT", path: "/users/reidentify", body: { id: "jane@example.com", new_id: "8765309" } },
    ]);
  });

  it("is invalid as an alias without previousId", () => {
    expect(errorOf({ type: "alias", userId: "u-1" })).toBe("alias needs a previousId");
  });

  it("deletes the user on a Segment deletion request", () => {
    expect(requestsOf({ type: "delete", messageId: "d-1", userId: "u-1" })).toEqual([
      { method: "POST", path: "/users/delete", body: { id: "u-1" } },
    ]);
  });
});

describe("tags", () => {
  it("adds tags to tags.id after the identify, exactly two requests in order", () => {
    expect(requestsOf(identifyWithTags)).toEqual([
      {
        method: "POST",
        path: "/users/track",
        body: { id: "324LKJF", email: "jane@example.com", data: { email: "jane@example.com", id: "324LKJF" } },
      },
      { method: "PUT", path: "/users/tags/edit", body: { id: "235FAG", add: ["warriors", "giants", "niners"] } },
    ]);
  });

  it("removes tags from the event's userId when tags.id is absent", () => {
    const requests = requestsOf({
      ...track,
      integrations: { Vero: { tags: { action: "remove", values: ["giants"] } } },
    });
    expect(requests.map((request) => `${request.method} ${request.path}`)).toEqual([
      "POST /events/track",
      "PUT /users/tags/edit",
    ]);
    expect(requests[1]?.body).toEqual({ id: "324LKJF", remove: ["giants"] });
  });

  it("accepts the { add, remove } form", () => {
    const requests = requestsOf({
      type: "identify",
      userId: "u-1",
      integrations: { Vero: { tags: { add: ["a"], remove: ["b"] } } },
    });
    expect(requests[1]).toEqual({
      method: "PUT",
      path: "/users/tags/edit",
      body: { id: "u-1", add: ["a"], remove: ["b"] },
    });
  });

  it("accepts tags as the name of the values, as Segment's destination read it", () => {
    const requests = requestsOf({
      type: "identify",
      userId: "u-1",
      integrations: { Vero: { tags: { action: "add", tags: ["a"] } } },
    });
    expect(requests[1]?.body).toEqual({ id: "u-1", add: ["a"] });
  });

  it("tags by email an identify that has no userId", () => {
    const requests = requestsOf({
      type: "identify",
      traits: { email: "jane@example.com" },
      integrations: { Vero: { tags: { add: ["a"] } } },
    });
    expect(requests[1]?.body).toEqual({ email: "jane@example.com", add: ["a"] });
  });

  const malformed: [string, unknown, string][] = [
    ["not an object", true, "integrations.Vero.tags must be an object"],
    [
      "values not strings",
      { action: "add", values: ["a", 1] },
      "integrations.Vero.tags.values must be an array of strings",
    ],
    ["values missing", { action: "add" }, "integrations.Vero.tags.values must be an array of strings"],
    [
      "an unknown action",
      { action: "toggle", values: ["a"] },
      'integrations.Vero.tags.action must be "add" or "remove"',
    ],
    ["neither form", { id: "u-1" }, "integrations.Vero.tags needs action and values, or add and/or remove"],
    ["add not an array", { add: "a" }, "integrations.Vero.tags.add must be an array of strings"],
    [
      "both forms",
      { action: "add", values: ["a"], remove: ["b"] },
      "integrations.Vero.tags mixes action with add/remove",
    ],
    ["an unknown key", { action: "add", values: ["a"], value: ["b"] }, "integrations.Vero.tags has unknown keys value"],
  ];
  for (const [problem, tags, message] of malformed) {
    it(`is invalid with tags that have ${problem}, naming the problem`, () => {
      expect(errorOf({ type: "identify", userId: "u-1", integrations: { Vero: { tags } } })).toContain(message);
    });
  }
});

describe("events that are acknowledged without a call", () => {
  it("skips events that came from this bridge (the loop guard)", () => {
    const mapped = map({
      ...track,
      context: { integration: { name: "vero-segment-bridge", version: "0.1.0" } },
      integrations: { Vero: false },
    });
    expect(mapped).toMatchObject({ outcome: "skip", reason: expect.stringMatching(/loop guard/) });
  });

  it("skips events that switch Vero off, as Segment would", () => {
    expect(map({ ...track, integrations: { Vero: false } })).toMatchObject({ outcome: "skip" });
    expect(map({ ...track, integrations: { All: false } })).toMatchObject({ outcome: "skip" });
    expect(map({ ...track, integrations: { All: false, Vero: true } })).toMatchObject({ outcome: "send" });
  });
});

describe("wire shapes", () => {
  it("takes the type from the /v1/<call> path when the event has none", () => {
    expect(map({ userId: "u-1", event: "x" }, "track")).toMatchObject({ outcome: "send" });
  });

  it("names an unknown type", () => {
    expect(errorOf({ type: "launch", userId: "u-1" })).toBe(
      "type must be one of identify, track, page, screen, group, alias, delete",
    );
  });

  it("reads one event, { batch }, and a JSON array", () => {
    expect(parseSegmentBody(JSON.stringify(track))).toEqual({ ok: true, events: [track] });
    expect(parseSegmentBody(JSON.stringify({ batch: [track, group] }))).toEqual({ ok: true, events: [track, group] });
    expect(parseSegmentBody(JSON.stringify([track, group]))).toEqual({ ok: true, events: [track, group] });
  });

  it("applies a batch's context and integrations to events that lack them", () => {
    const body = parseSegmentBody(
      JSON.stringify({ batch: [{ type: "track" }], context: { userAgent: "UA" }, integrations: { Vero: false } }),
    );
    expect(body).toEqual({
      ok: true,
      events: [{ type: "track", context: { userAgent: "UA" }, integrations: { Vero: false } }],
    });
  });

  it("refuses malformed JSON, empty batches and batches over 4,000 events", () => {
    expect(parseSegmentBody("{nope")).toEqual({ ok: false, error: "the body is not valid JSON" });
    expect(parseSegmentBody("[]")).toEqual({ ok: true, events: [] });
    expect(parseSegmentBody(JSON.stringify({ batch: Array.from({ length: 4001 }, () => track) }))).toMatchObject({
      ok: false,
      error: expect.stringMatching(/at most 4000/),
    });
  });
});

describe("mobile context, as RudderStack's Vero destination maps it", () => {
  const mobile = {
    type: "identify",
    userId: "u-7",
    traits: { email: "jane@example.com" },
    context: {
      device: { token: "fcm-token-1", name: "Pixel 8", manufacturer: "Google" },
      os: { name: "Android", version: "14" },
      timezone: "Europe/Berlin",
      locale: "de-DE",
    },
  };

  it("identify carries the device's push channel and the user's timezone and locale in Vero's field names", () => {
    expect(requestsOf(mobile)).toEqual([
      {
        method: "POST",
        path: "/users/track",
        body: {
          id: "u-7",
          email: "jane@example.com",
          channels: [{ type: "push", address: "fcm-token-1", platform: "android", device: "Pixel 8" }],
          data: { email: "jane@example.com", id: "u-7", timezone: "Europe/Berlin", language: "de-DE" },
        },
      },
    ]);
  });

  it("leaves the channel out without both a token and a platform, and a device name out when none is given", () => {
    const noToken = { ...mobile, context: { ...mobile.context, device: { name: "Pixel 8" } } };
    expect(requestsOf(noToken)[0]?.body).not.toHaveProperty("channels");
    const noOs = { ...mobile, context: { ...mobile.context, os: undefined } };
    expect(requestsOf(noOs)[0]?.body).not.toHaveProperty("channels");
    const unnamed = { ...mobile, context: { ...mobile.context, device: { token: "apns-1" }, os: { name: "iOS" } } };
    expect(requestsOf(unnamed)[0]?.body.channels).toEqual([{ type: "push", address: "apns-1", platform: "ios" }]);
  });

  it("keeps a timezone or language the traits set themselves", () => {
    const own = { ...mobile, traits: { timezone: "UTC", language: "en" } };
    expect(requestsOf(own)[0]?.body.data).toEqual({ timezone: "UTC", language: "en", id: "u-7" });
  });

  it("adds nothing to track calls: Vero takes channels on the user alone", () => {
    const requests = requestsOf({ ...mobile, type: "track", event: "Opened App", traits: undefined });
    expect(requests).toEqual([
      {
        method: "POST",
        path: "/events/track",
        body: {
          identity: { id: "u-7" },
          event_name: "Opened App",
          data: {},
          extras: { created_at: receivedAtSeconds, source: "segment" },
        },
      },
    ]);
  });
});

describe("anonymous users (VERO_ANONYMOUS_IDS)", () => {
  it("is off by default: an event without userId or email is refused, as Segment's destination does", () => {
    expect(errorOf({ type: "track", anonymousId: "anon-1", event: "Viewed" })).toBe("no userId or email");
  });

  it("when on, track, page and identify without a userId or email go by the anonymousId", () => {
    const on = { anonymousIds: true };
    expect(requestsOf({ type: "track", anonymousId: "anon-1", event: "Viewed" }, on)).toEqual([
      {
        method: "POST",
        path: "/events/track",
        body: {
          identity: { id: "anon-1" },
          event_name: "Viewed",
          data: {},
          extras: { created_at: receivedAtSeconds, source: "segment" },
        },
      },
    ]);
    expect(requestsOf({ type: "identify", anonymousId: "anon-1", traits: { plan: "free" } }, on)).toEqual([
      { method: "POST", path: "/users/track", body: { id: "anon-1", data: { plan: "free", id: "anon-1" } } },
    ]);
    expect(requestsOf({ type: "page", anonymousId: 99, properties: { url: "/x" } }, on)[0]?.body.identity).toEqual({
      id: "99",
    });
  });

  it("when on, orders an anonymous user's events in the anonymousId's mailbox", () => {
    const parsed = parseSegmentEvent({ type: "track", anonymousId: "anon-1", event: "Viewed" });
    if (!parsed.ok) throw new Error(parsed.error);
    expect(orderingKey(parsed.event, "#0", true)).toBe("anon-1");
    expect(orderingKey(parsed.event, "#0")).toBe("#0");
  });

  it("when on, a userId still wins, and identify with an email still goes by the email", () => {
    const on = { anonymousIds: true };
    expect(
      requestsOf({ type: "track", userId: "u-1", anonymousId: "anon-1", event: "x" }, on)[0]?.body.identity,
    ).toEqual({
      id: "u-1",
    });
    expect(requestsOf({ type: "identify", anonymousId: "anon-1", traits: { email: "jane@example.com" } }, on)).toEqual([
      {
        method: "POST",
        path: "/users/track",
        body: { email: "jane@example.com", data: { email: "jane@example.com" } },
      },
    ]);
  });
});
