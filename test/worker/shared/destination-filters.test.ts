/** Segment's Destination Filters: each FQL form Segment documents, the four actions in Segment's order, the setting's errors. */
import { describe, expect, it } from "vitest";
import {
  applyFilters,
  type DestinationFilter,
  holds,
  parseDestinationFilters,
  parseFql,
} from "../../../src/shared/destination-filters.ts";

// The event of Segment's FQL reference, with a few more fields to compare against.
const event = {
  type: "track",
  event: "Button Clicked",
  messageId: "m-1",
  userId: "u-1",
  context: { library: { name: "analytics.js", version: "1.0" }, ip: "203.0.113.9" },
  properties: { features: ["discounts", "dark-mode"], price: 42, plan: "Pro", path: "/shop/cart", email: "x@y.z" },
};

const fql = (source: string) => holds(parseFql(source), event);

describe("FQL, each form Segment documents for destination filters", () => {
  // The example object and table of Segment's FQL reference, verbatim.
  const reference = {
    event: "Button Clicked",
    type: "track",
    context: { library: { name: "analytics.js", version: "1.0" } },
    properties: { features: ["discounts", "dark-mode"] },
  };
  it.each([
    ["event = 'Button Clicked'", true],
    ["event = 'Screen Tapped'", false],
    ["context.path.path = '/login'", false],
    ["type = 'identify' or type = 'track'", true],
    ["event = 'Button Clicked' and type = 'track'", true],
    ["match( context.library.version, '1.*' )", true],
    ["match( context.library.version, '2.*' )", false],
    ["type = 'track' and ( event = 'Click' or match( event, 'Button *' ) )", true],
    ["!contains( context.library.name, 'js' )", false],
    ["'dark-mode' in properties.features", true],
    ["'blink' in properties.features", false],
    ["!( type in ['track', 'identify'] )", false],
    ["type in ['page', 'screen']", false],
  ])("Segment's reference: %s is %s", (source, expected) => expect(holds(parseFql(source), reference)).toBe(expected));

  it.each([
    ["match('abcd', 'a*d')", true],
    ["match('', '*')", true],
    ["match('abc', 'ab')", false],
    ["match('abcd', 'a??d')", true],
    ["match('abcd', '*d')", true],
    ["match('ab*d', 'ab\\*d')", true],
    ["match('abcd', 'ab\\*d')", false],
    ["match('it\\'s', 'it*')", true],
    ["match('abCd', 'ab[cC]d')", true],
    ["match('abcd', 'ab[a-z]d')", true],
    ["match('abcd', 'ab[A-Z]d')", false],
  ])("Segment's glob table: %s is %s", (source, expected) => expect(fql(source)).toBe(expected));

  it.each([
    ["length(userId) > 0", true],
    ["length(anonymousId) = 0", true],
    ["length('ア') = 3", true],
    ["uppercase(properties.plan) = 'PRO'", true],
    ["snakecase('test string') = 'test_string'", true],
    ["kebabcase('test string') = 'test-string'", true],
    ["titlecase('test string') = 'Test String'", true],
    ["lowercase(anonymousId) = null", true],
    ["typeof(properties.price) = 'number'", true],
    ["typeof(properties.features) = 'list'", true],
    ["typeof(properties.coupon) = 'null'", true],
    ["number('42') = properties.price", true],
    ["string(properties.price) = '42'", true],
    ["bool(properties.plan)", true],
    ["bool(properties.coupon)", false],
  ])("functions: %s is %s", (source, expected) => expect(fql(source)).toBe(expected));

  it("reads an escaped path: a field name with a space", () => {
    expect(
      holds(parseFql("properties.product\\ 1.price = '19.99'"), { properties: { "product 1": { price: "19.99" } } }),
    ).toBe(true);
  });

  it.each([
    ['event = "Button Clicked"', true],
    ['event = "button clicked"', false],
    ['event != "Button Clicked"', false],
    ['type != "identify"', true],
    ['context.library.name = "analytics.js"', true],
    // Strict types, as in tsub: a string never equals a number.
    ['properties.price = "42"', false],
    ["properties.price = 42", true],
  ])("equality and inequality: %s is %s", (source, expected) => expect(fql(source)).toBe(expected));

  it.each([
    ['type = "track" and event = "Button Clicked"', true],
    ['type = "track" and event = "Signed Up"', false],
    ['event = "Signed Up" or event = "Button Clicked"', true],
    ['event = "Signed Up" or event = "Logged In"', false],
    ['!(event = "Button Clicked")', false],
    ['!(event = "Signed Up")', true],
    // `and` binds tighter than `or`: true or (false and false).
    ['type = "track" or type = "page" and event = "x"', true],
    ['(type = "track" or type = "page") and event = "x"', false],
  ])("and / or / !: %s is %s", (source, expected) => expect(fql(source)).toBe(expected));

  it.each([
    ['contains(event, "Click")', true],
    ['contains(event, "click")', false],
    ['contains(lowercase(event), "click")', true],
    ['contains(properties.price, "4")', false],
    ['!contains(context.library.name, "ios")', true],
  ])("contains: %s is %s", (source, expected) => expect(fql(source)).toBe(expected));

  it.each([
    ['match(event, "Button*")', true],
    ['match(event, "*Clicked")', true],
    ['match(event, "*ton Cl*")', true],
    ['match(event, "Button?Clicked")', true],
    ['match(event, "Order*")', false],
    // `*` crosses `/`, as in Segment's glob (filesystem globs stop there).
    ['match(properties.path, "/shop*")', true],
    ['match(properties.path, "/sh[o]p/*")', true],
    ['match(event, "Button")', false],
  ])("match with wildcards: %s is %s", (source, expected) => expect(fql(source)).toBe(expected));

  it.each([
    ["properties.plan != null", true],
    ["properties.coupon != null", false],
    ["properties.coupon = null", true],
    ["context.ip != null", true],
    ["userId != null and anonymousId = null", true],
  ])("exists-style checks: %s is %s", (source, expected) => expect(fql(source)).toBe(expected));

  it.each([
    ["properties.price > 40", true],
    ["properties.price >= 42", true],
    ["properties.price < 42", false],
    ["properties.price <= 42.5", true],
    ["properties.price > -1", true],
    // Numeric comparisons need two numbers.
    ["properties.plan > 1", false],
    ["properties.coupon < 1", false],
    ["length(properties.features) = 2", true],
    ["length(properties.features) > 2", false],
  ])("numeric comparisons on properties: %s is %s", (source, expected) => expect(fql(source)).toBe(expected));

  it.each([
    ['event = "Button Clicked', "unterminated string at column 9"],
    ['event = "a" and', "unexpected the end"],
    ['event = "a")', 'unexpected ")" at column 12'],
    [
      'startswith(event, "a")',
      "unknown function startswith() at column 1 (known: contains, match, length, lowercase, uppercase, snakecase, kebabcase, titlecase, typeof, bool, string, number)",
    ],
    ["contains(event)", "contains() takes 2 argument(s), given 1"],
    ['event # "a"', 'unexpected "#" at column 7'],
  ])("refuses %s: %s", (source, message) => expect(() => parseFql(source)).toThrow(message));
});

/** Filters as the Public API lists them. */
function compiled(filters: unknown[]): DestinationFilter[] {
  const parsed = parseDestinationFilters(JSON.stringify(filters));
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.filters;
}

describe("the four actions, in Segment's order", () => {
  it("drops a matching event and names the filter; keeps the others untouched", () => {
    const filters = compiled([
      { title: "No page views", if: 'type = "page"', actions: [{ type: "DROP" }], enabled: true },
    ]);
    expect(applyFilters(filters, { ...event, type: "page" })).toEqual({
      kept: false,
      by: "No page views",
      action: "DROP",
    });
    expect(applyFilters(filters, event)).toEqual({ kept: true, event, changedBy: [] });
  });

  it("drops properties listed under their object, and keeps only the allowed ones, on a copy", () => {
    const filters = compiled([
      {
        title: "Only plan and price",
        if: "all",
        actions: [{ type: "ALLOW_PROPERTIES", fields: { properties: ["plan", "price", "email"] } }],
        enabled: true,
      },
      {
        title: "No PII",
        if: "",
        actions: [{ type: "DROP_PROPERTIES", fields: { properties: ["email"], context: ["ip"] } }],
        enabled: true,
      },
    ]);
    const decision = applyFilters(filters, event);
    expect(decision).toEqual({
      kept: true,
      event: {
        ...event,
        context: { library: { name: "analytics.js", version: "1.0" } },
        properties: { price: 42, plan: "Pro" },
      },
      // Drops before allows, whatever the filters' order.
      changedBy: ["No PII", "Only plan and price"],
    });
    expect(event.properties.email).toBe("x@y.z");
  });

  it("samples before it drops: a sampled-out event is counted under the sampling filter", () => {
    const filters = compiled([
      { title: "Drop clicks", if: 'event = "Button Clicked"', actions: [{ type: "DROP" }], enabled: true },
      { title: "Keep none", if: "all", actions: [{ type: "SAMPLE", percent: 0, path: "" }], enabled: true },
    ]);
    expect(applyFilters(filters, event)).toEqual({ kept: false, by: "Keep none", action: "SAMPLE" });
  });

  it("drops before it edits properties, and a disabled filter does nothing", () => {
    const filters = compiled([
      { title: "Edit", if: "all", actions: [{ type: "DROP_PROPERTIES", fields: { properties: ["plan"] } }] },
      { title: "Off", if: "all", actions: [{ type: "DROP" }], enabled: false },
      { title: "Drop", if: "properties.plan != null", actions: [{ type: "DROP" }], enabled: true },
    ]);
    expect(applyFilters(filters, event)).toEqual({ kept: false, by: "Drop", action: "DROP" });
  });

  it("samples by the messageId's hash: the same messageId always gets the same decision, about the share asked for", () => {
    const filters = compiled([
      { title: "Half", if: "all", actions: [{ type: "SAMPLE", percent: 0.5, path: "" }], enabled: true },
    ]);
    const kept = (messageId: string) => applyFilters(filters, { ...event, messageId }).kept;
    const ids = Array.from({ length: 1000 }, (_, i) => `message-${i}`);
    const first = ids.map(kept);
    expect(ids.map(kept)).toEqual(first);
    const share = first.filter(Boolean).length / ids.length;
    expect(share).toBeGreaterThan(0.45);
    expect(share).toBeLessThan(0.55);
    // Another path decides by its own value: all events of one user together.
    const byUser = compiled([
      { title: "Users", if: "all", actions: [{ type: "SAMPLE", percent: 0.5, path: "userId" }], enabled: true },
    ]);
    const decisions = new Set(ids.map((messageId) => applyFilters(byUser, { ...event, messageId }).kept));
    expect(decisions.size).toBe(1);
  });
});

describe("the DESTINATION_FILTERS setting", () => {
  const filter = { title: "Drop", if: 'type = "page"', actions: [{ type: "DROP" }], enabled: true };

  it("takes the Public API's list answer as it comes, or its filters alone", () => {
    const listed = { data: { filters: [{ id: "f1", sourceId: "s", destinationId: "d", ...filter }], pagination: {} } };
    for (const raw of [JSON.stringify(listed), listed, [filter], { filters: [filter] }])
      expect(parseDestinationFilters(raw)).toMatchObject({
        ok: true,
        filters: [{ title: "Drop", actions: [{ type: "DROP" }] }],
      });
  });

  it.each([
    ["not json", "is not valid JSON"],
    ['{"a":1}', "must be a JSON array of filters (or the Public API's { data: { filters } })"],
    [JSON.stringify([{ ...filter, if: 'type = "page' }]), 'filter 1 ("Drop"): if unterminated string at column 8'],
    [
      JSON.stringify([filter, { ...filter, title: "Half", actions: [{ type: "SAMPLE", percent: 50 }] }]),
      'filter 2 ("Half"): actions.0 percent must be a number from 0 to 1',
    ],
    [
      JSON.stringify([{ ...filter, actions: [{ type: "REDACT" }] }]),
      'filter 1 ("Drop"): actions.0 type must be one of DROP, SAMPLE, DROP_PROPERTIES, ALLOW_PROPERTIES',
    ],
    [JSON.stringify([{ if: "all", actions: [{ type: "DROP" }] }]), "filter 1: title must be a non-empty string"],
    [
      JSON.stringify([{ ...filter, actions: [{ type: "DROP_PROPERTIES", fields: { properties: "email" } }] }]),
      'filter 1 ("Drop"): actions.0 fields must map object paths to arrays of keys',
    ],
    [JSON.stringify([{ ...filter, actions: [] }]), 'filter 1 ("Drop"): actions must be a non-empty array'],
  ])("names what is wrong in %s", (raw, message) => {
    const parsed = parseDestinationFilters(raw);
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? "" : parsed.error).toContain(message);
  });
});
