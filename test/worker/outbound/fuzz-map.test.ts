/**
 * The pure halves of both directions against hostile input: for anything
 * at all, the mapping functions answer with a message (or calls), a
 * deliberate skip, or a validation error naming the problem. They never
 * throw, and what they produce is something the senders can serialize.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { mapVeroWebhook } from "../../../src/inbound/map.ts";
import { VERO_CALLS as JOB_VERO_CALLS } from "../../../src/outbound/job.ts";
import { mapSegmentEvent, VERO_MAX_FIELD_LENGTH } from "../../../src/outbound/map.ts";
import { MAX_BATCH_EVENTS, parseSegmentBody, parseSegmentEvent } from "../../../src/outbound/schema.ts";
import {
  checkProperty,
  expectPrototypesClean,
  hostileJson,
  mutated,
  nested,
  prototypeSnapshot,
} from "../helpers/fuzz.ts";
import { ALL_CASES } from "../helpers/inbound-cases.ts";
import { SEGMENT_EVENTS, SKIPPED_EVENTS } from "../helpers/segment-events.ts";

const FILE = "test/worker/outbound/fuzz-map.test.ts";
const receivedAt = new Date("2026-11-28T12:00:00.000Z");

/** Anything, valid payloads a few edits away from valid, and nesting far past any stack. */
function hostileInput(fixtures: readonly unknown[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 3, arbitrary: hostileJson },
    { weight: 6, arbitrary: mutated(fixtures) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...fixtures), fc.constantFrom(31, 33, 100_000))
        .map(([fixture, depth]) => ({ ...(fixture as object), deep: nested(depth) })),
    },
  );
}

/** Vero's endpoints (the list queue jobs are checked against) and the fields it refuses over 255 characters. */
const VERO_CALLS = new Set<string>(JOB_VERO_CALLS);

function limitedFields(body: Record<string, unknown>): unknown[] {
  const identity = (body.identity ?? {}) as Record<string, unknown>;
  return [body.id, body.email, body.new_id, body.event_name, identity.id, identity.email];
}

describe("mapVeroWebhook under fuzzing", () => {
  const test = "answers every input with a message, an ignored type or a named problem";
  it(test, async () => {
    const before = prototypeSnapshot();
    const outcomes = new Map<string, number>();
    const property = fc.property(hostileInput(ALL_CASES.map((entry) => entry.payload)), (input) => {
      const mapped = mapVeroWebhook(input, { receivedAt });
      outcomes.set(mapped.kind, (outcomes.get(mapped.kind) ?? 0) + 1);
      switch (mapped.kind) {
        case "message": {
          const { message } = mapped;
          expect(message.messageId).toMatch(/^vero-[0-9a-f]{64}$/);
          // Segment refuses a message with neither.
          expect(message.userId ?? message.anonymousId).toMatch(/\S/);
          expect(new Date(message.timestamp).toISOString()).toBe(message.timestamp);
          expect(JSON.stringify(message)).toMatch(/^\{/);
          break;
        }
        case "ignored":
          expect(mapped.reason).toMatch(/\S/);
          break;
        case "invalid":
          expect(mapped.problem.message).toMatch(/\S/);
          break;
        default:
          throw new Error(`unexpected outcome ${JSON.stringify(mapped)}`);
      }
    });
    await checkProperty(property, { file: FILE, test, numRuns: 5_000 });
    expectPrototypesClean(before);
    expect(outcomes.get("message") ?? 0, JSON.stringify([...outcomes])).toBeGreaterThanOrEqual(500);
    expect(outcomes.get("invalid") ?? 0, JSON.stringify([...outcomes])).toBeGreaterThanOrEqual(500);
  }, 60_000);
});

describe("parseSegmentBody under fuzzing", () => {
  const test = "reads any text as at most 2,500 events (none for an empty batch) or names the problem";
  it(test, async () => {
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 100 }),
      hostileJson.map((value) => JSON.stringify(value) ?? ""),
      hostileJson.map((value) => JSON.stringify({ batch: value })),
    );
    const property = fc.property(text, (raw) => {
      const body = parseSegmentBody(raw);
      if (body.ok) {
        expect(body.events.length).toBeLessThanOrEqual(MAX_BATCH_EVENTS);
      } else expect(body.error).toMatch(/\S/);
    });
    await checkProperty(property, { file: FILE, test, numRuns: 2_000 });
  });
});

describe("parseSegmentEvent and mapSegmentEvent under fuzzing", () => {
  const test = "answer every input with Vero calls Vero accepts, a skip, or a named problem";
  it(test, async () => {
    const before = prototypeSnapshot();
    const outcomes = new Map<string, number>();
    const implied = fc.option(
      fc.constantFrom("track", "identify", "group", "alias", "page", "screen") as fc.Arbitrary<
        "track" | "identify" | "group" | "alias" | "page" | "screen"
      >,
      { nil: undefined },
    );
    const property = fc.property(
      hostileInput([...Object.values(SEGMENT_EVENTS), ...SKIPPED_EVENTS]),
      implied,
      (input, impliedType) => {
        const parsed = parseSegmentEvent(input, impliedType);
        if (!parsed.ok) {
          expect(parsed.error).toMatch(/\S/);
          outcomes.set("unparsed", (outcomes.get("unparsed") ?? 0) + 1);
          return;
        }
        const mapped = mapSegmentEvent(parsed.event, { receivedAt });
        outcomes.set(mapped.outcome, (outcomes.get(mapped.outcome) ?? 0) + 1);
        if (mapped.outcome === "invalid") expect(mapped.error).toMatch(/\S/);
        else if (mapped.outcome === "skip") expect(mapped.reason).toMatch(/\S/);
        else {
          expect(mapped.requests.length).toBeGreaterThanOrEqual(1);
          expect(mapped.requests.length).toBeLessThanOrEqual(2);
          for (const request of mapped.requests) {
            expect(VERO_CALLS).toContain(`${request.method} ${request.path}`);
            expect(() => JSON.stringify(request.body)).not.toThrow();
            for (const value of limitedFields(request.body)) {
              if (value !== undefined) expect(String(value).length).toBeLessThanOrEqual(VERO_MAX_FIELD_LENGTH);
            }
          }
        }
      },
    );
    await checkProperty(property, { file: FILE, test, numRuns: 5_000 });
    expectPrototypesClean(before);
    const summary = JSON.stringify([...outcomes]);
    for (const outcome of ["send", "skip", "invalid", "unparsed"])
      expect(outcomes.get(outcome) ?? 0, summary).toBeGreaterThan(50);
  }, 60_000);
});
