import { describe, expect, it } from "vitest";
import { mapVeroWebhook } from "../../../src/inbound/map.ts";
import { canonicalJson, veroMessageId } from "../../../src/inbound/message-id.ts";
import clicked from "../../fixtures/vero/clicked.json";
import unsubscribed from "../../fixtures/vero/unsubscribed.json";
import { IDENTIFY_CASES, TRACK_CASES } from "../helpers/inbound-cases.ts";

const receivedAt = new Date("2026-01-02T03:04:05.678Z");
const map = (payload: unknown) => mapVeroWebhook(payload, { receivedAt });

/** The message a payload maps to, failing the test when it maps to anything else. */
function messageOf(payload: unknown) {
  const mapped = map(payload);
  if (mapped.kind !== "message") throw new Error(`expected a message, got ${JSON.stringify(mapped)}`);
  return mapped.message;
}

/** The track a payload maps to. */
function trackOf(payload: unknown) {
  const message = messageOf(payload);
  if (message.type !== "track") throw new Error(`expected a track, got ${message.type}`);
  return message;
}

function problemOf(payload: unknown) {
  const mapped = map(payload);
  if (mapped.kind !== "invalid") throw new Error(`expected invalid, got ${JSON.stringify(mapped)}`);
  return mapped.problem;
}

describe("mapVeroWebhook: every Vero type of the contract", () => {
  for (const { name, payload, expected } of [...TRACK_CASES, ...IDENTIFY_CASES]) {
    it(`maps ${name}`, () => {
      expect(map(payload)).toStrictEqual({ kind: "message", message: expected(receivedAt.toISOString()) });
    });
  }
});

describe("mapVeroWebhook: identity", () => {
  it("reads a numeric id as its decimal string, 0 included", () => {
    expect(messageOf({ ...clicked, user: { id: 0, email: "zero@example.com" } }).userId).toBe("0");
  });

  it("uses the email as anonymousId when the id is null or blank", () => {
    for (const id of [null, "", "  "]) {
      const message = messageOf({ ...clicked, user: { id, email: "x@example.com" } });
      expect(message).toMatchObject({ anonymousId: "x@example.com" });
      expect(message).not.toHaveProperty("userId");
    }
  });

  it("sends no context.traits when the user has an id but no email", () => {
    const message = messageOf({ ...clicked, user: { id: 5 } });
    expect(message.userId).toBe("5");
    expect(message.context).toStrictEqual({
      integration: { name: "vero-segment-bridge", version: expect.any(String) },
      userAgent: clicked.user_agent,
    });
  });

  it("trims the email it puts in context.traits and anonymousId", () => {
    const message = messageOf({ ...unsubscribed, user: { email: "  pad@example.com " } });
    expect(message).toMatchObject({
      anonymousId: "pad@example.com",
      context: { traits: { email: "pad@example.com" } },
    });
  });
});

describe("mapVeroWebhook: timestamps", () => {
  it("reads <type>_at as Unix seconds, a numeric string, milliseconds or ISO 8601", () => {
    for (const at of [1435016238, "1435016238", 1435016238000, "2015-06-22T23:37:18Z"]) {
      expect(messageOf({ ...clicked, clicked_at: at }).timestamp).toBe("2015-06-22T23:37:18.000Z");
    }
  });

  it("falls back to the receipt time when <type>_at is absent, null or blank", () => {
    const { clicked_at: _, ...withoutTime } = clicked;
    for (const payload of [withoutTime, { ...clicked, clicked_at: null }, { ...clicked, clicked_at: "" }]) {
      expect(messageOf(payload).timestamp).toBe(receivedAt.toISOString());
    }
  });

  it("reads only <type>_at, not another type's time", () => {
    const { clicked_at: _, ...withoutTime } = clicked;
    expect(messageOf({ ...withoutTime, opened_at: 1435016238 }).timestamp).toBe(receivedAt.toISOString());
  });

  it("refuses a <type>_at that is not a time, naming it", () => {
    expect(problemOf({ ...clicked, clicked_at: "yesterday" }).message).toBe(
      "clicked_at must be Unix seconds or an ISO 8601 time",
    );
  });
});

describe("mapVeroWebhook: properties", () => {
  it("reads tags given as an array as well as a comma-separated string, and drops blank ones", () => {
    expect(trackOf({ ...clicked, tags: ["a", " b ", "", 3] }).properties.campaign_tags).toStrictEqual(["a", "b", "3"]);
    expect(trackOf({ ...clicked, tags: " , " }).properties).not.toHaveProperty("campaign_tags");
  });

  it("prefers the campaign's tags to top-level ones", () => {
    const payload = { ...clicked, tags: "top", campaign: { ...clicked.campaign, tags: "inner-1,inner-2" } };
    expect(trackOf(payload).properties.campaign_tags).toStrictEqual(["inner-1", "inner-2"]);
  });

  it("prefers subject, name and variation to their alternative keys when both are present", () => {
    const campaign = {
      ...clicked.campaign,
      email_subject: "other subject",
      campaign_title: "other name",
      variation_name: "other variation",
    };
    expect(trackOf({ ...clicked, campaign }).properties).toMatchObject({
      email_subject: "Your order is being processed!",
      campaign_name: "Order confirmation",
      campaign_variation: "Variation A",
    });
  });

  it("takes the top-level message_id over the campaign's", () => {
    const payload = { ...clicked, message_id: "top@vero", campaign: { ...clicked.campaign, message_id: "inner@vero" } };
    expect(trackOf(payload).properties.email_id).toBe("top@vero");
  });

  it("treats a null campaign like no campaign", () => {
    expect(trackOf({ ...unsubscribed, campaign: null }).properties).toStrictEqual({});
  });

  it("keeps unknown fields out of the properties", () => {
    expect(trackOf({ ...unsubscribed, something_new: { deep: true } }).properties).toStrictEqual({});
  });
});

describe("mapVeroWebhook: what cannot be mapped", () => {
  it("refuses a body that is not an object", () => {
    expect(problemOf([clicked]).message).toBe("body must be a JSON object, got an array");
    expect(problemOf("clicked").message).toBe("body must be a JSON object, got string");
    expect(problemOf(null).message).toBe("body must be a JSON object, got null");
  });

  it("refuses a payload with neither a type nor changes", () => {
    const { type: _, ...untyped } = clicked;
    expect(problemOf(untyped).message).toMatch(/^no type/);
  });

  it("refuses a type that is not a string", () => {
    expect(problemOf({ ...clicked, type: 7 }).message).toBe("type must be a string, got number");
  });

  it("refuses a known type without a user, or whose user has neither id nor email", () => {
    const { user: _, ...userless } = clicked;
    expect(problemOf(userless).message).toBe("no user: the payload has no `user`");
    expect(problemOf({ ...clicked, user: "steve" }).message).toBe("user must be an object, got string");
    expect(problemOf({ ...clicked, user: { name: "Steve" } }).message).toMatch(/^no user id or email/);
    expect(problemOf({ ...clicked, user: { id: null, email: " " } }).message).toMatch(/^no user id or email/);
  });

  it("refuses a field of a type that cannot mean anything, naming the field", () => {
    expect(problemOf({ ...clicked, campaign: "Order confirmation" }).message).toMatch(/^campaign /);
    const problem = problemOf({ ...clicked, campaign: { ...clicked.campaign, name: { en: "Order" } } });
    expect(problem.message).toBe("campaign.name must be a string or a number");
    expect(problem.issues).toContainEqual({ path: "campaign.name", message: "must be a string or a number" });
    expect(problemOf({ ...clicked, user: { id: { nested: 1 } } }).message).toBe("user.id must be a string or a number");
  });

  it("ignores a type it does not forward, whatever else the payload holds", () => {
    expect(map({ type: "dropped", user: "not even an object" })).toStrictEqual({
      kind: "ignored",
      type: "dropped",
      reason: 'Vero type "dropped" is not forwarded to Segment',
    });
  });
});

describe("messageId", () => {
  it("is the same for the same webhook, and for the same content in another key order", () => {
    const reordered = Object.fromEntries(Object.entries(clicked).reverse());
    expect(Object.keys(reordered)).not.toEqual(Object.keys(clicked));
    expect(messageOf(reordered).messageId).toBe(messageOf(clicked).messageId);
    expect(messageOf(structuredClone(clicked)).messageId).toBe(messageOf(clicked).messageId);
  });

  it("does not depend on the receipt time", () => {
    const later = mapVeroWebhook(clicked, { receivedAt: new Date(receivedAt.getTime() + 60_000) });
    expect(later.kind === "message" && later.message.messageId).toBe(messageOf(clicked).messageId);
  });

  it("differs when anything in the webhook differs", () => {
    const variants = [
      clicked,
      { ...clicked, type: "opened", opened_at: clicked.clicked_at },
      { ...clicked, clicked_at: clicked.clicked_at + 1 },
      { ...clicked, user: { ...clicked.user, id: 124 } },
      { ...clicked, user: { ...clicked.user, id: "123" } },
      { ...clicked, user: { ...clicked.user, email: "other@getvero.com" } },
      { ...clicked, campaign: { ...clicked.campaign, id: 988 } },
      { ...clicked, message_id: "a@vero" },
      { ...clicked, message_id: "b@vero" },
      { ...clicked, user_agent: "curl/8" },
    ];
    const ids = variants.map((payload) => messageOf(payload).messageId);
    expect(new Set(ids).size).toBe(variants.length);
  });

  it("is vero- and the SHA-256 of the canonical JSON", () => {
    // Pinned, computed outside the code: Python's json.dumps(sort_keys=True, separators=(",", ":"),
    // ensure_ascii=False) of the fixture, hashed with hashlib.sha256. A change of format or hash changes
    // every id, and with it Segment's de-duplication across a deploy.
    expect(veroMessageId(clicked)).toBe("vero-a58b9b9a8ee3811701d9337e58ebebda82e1a7fdebb9db12ad654684c743ad07");
  });

  it("canonical JSON sorts keys at every depth and keeps array order", () => {
    expect(canonicalJson({ b: [3, { z: 1, a: 2 }], a: "x" })).toBe('{"a":"x","b":[3,{"a":2,"z":1}]}');
  });

  it("canonical JSON is JSON.stringify's text: escapes, non-ASCII, numbers, undefined dropped or null", () => {
    const value = {
      text: 'quote " backslash \\ tab \t nul \u0000 é € 😀 lone \ud800 \udc00',
      numbers: [0, -0, 1.5, 1e21, -2e-7, 123456789012],
      flags: [true, false, null],
      holes: [undefined, 1],
      skipped: undefined,
    };
    const { skipped: _skipped, ...kept } = value;
    // An array replacer makes JSON.stringify write the keys in that (sorted) order.
    expect(canonicalJson(value)).toBe(JSON.stringify(kept, ["flags", "holes", "numbers", "text"]));
    expect(canonicalJson("top")).toBe('"top"');
    expect(canonicalJson(42)).toBe("42");
    expect(canonicalJson(undefined)).toBe("null");
  });

  it("keeps a __proto__ key in the canonical JSON, so webhooks differing only there get different ids", () => {
    const plain = JSON.parse('{"type":"sent","user":{"email":"a@example.com"}}');
    const withProto = JSON.parse('{"type":"sent","user":{"email":"a@example.com"},"__proto__":{"x":1}}');
    expect(canonicalJson(withProto)).toBe('{"__proto__":{"x":1},"type":"sent","user":{"email":"a@example.com"}}');
    expect(veroMessageId(withProto)).not.toBe(veroMessageId(plain));
  });

  it("does not depend on key order or on where non-ASCII text sits", () => {
    const { campaign, ...rest } = clicked;
    expect(veroMessageId({ campaign, ...rest })).toBe(veroMessageId(clicked));
    const large = { ...clicked, campaign: { ...campaign, name: "é".repeat(10_000) } };
    expect(veroMessageId(large)).toMatch(/^vero-[0-9a-f]{64}$/);
    expect(veroMessageId(large)).not.toBe(veroMessageId(clicked));
  });
});
