/**
 * POST /segment and POST /v1/* against hostile input, authenticated (a
 * real X-Signature, or Basic) so that every input reaches parsing and
 * mapping. Valid events really go to the Vero stand-in; each run has its
 * own Vero tenant, so "a refused request sent nothing" is checked run by run.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/shared/env.ts";
import { hmacSha1Hex } from "../../src/shared/secrets.ts";
import {
  capturingLogs,
  checkProperty,
  expectNoUnexpectedErrors,
  expectPrototypesClean,
  FUZZ_SEED,
  hostileJson,
  hostileValue,
  mutated,
  nestedText,
  prototypeSnapshot,
} from "./fuzz.ts";
import { basic, callWorker, isolatedEnv, segment, vero } from "./helpers.ts";
import { SEGMENT_EVENTS, SKIPPED_EVENTS } from "./segment-events.ts";

const FILE = "test/worker/fuzz-outbound.test.ts";
const SECRET = "dev-segment-shared-secret-for-local-use";
const events = [...Object.values(SEGMENT_EVENTS), ...SKIPPED_EVENTS];
const serialized = (value: unknown): string => JSON.stringify(value) ?? "";

/** The only 5xx the bridge answers on purpose: Vero could not take an event, and Segment should retry. */
const DELIBERATE_503 = new Set(["vero_unavailable"]);
/** Refusals decided by the bridge alone: nothing may have reached Vero. */
const REFUSED_BEFORE_VERO = new Set(["bad_request", "invalid_event", "payload_too_large"]);

const event = mutated(events);
// Small batches: every valid event costs a real call to the stand-in.
const eventList = fc.array(event, { minLength: 0, maxLength: 4 });

const outboundBody: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
  { weight: 2, arbitrary: hostileJson.map(serialized) },
  { weight: 6, arbitrary: event.map(serialized) },
  {
    weight: 2,
    arbitrary: fc
      .record({ batch: eventList, context: hostileValue, integrations: hostileValue }, { requiredKeys: ["batch"] })
      .map(serialized),
  },
  { weight: 2, arbitrary: eventList.map(serialized) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(31, 33, 1_000, 200_000)
      .map((depth) => `{"type":"track","userId":"u-1","event":"Deep","properties":{"deep":${nestedText(depth)}}}`),
  },
  // At and over Segment's 2,500 events per batch; invalid events, so that none costs a call.
  { weight: 1, arbitrary: fc.constantFrom(2_500, 2_501).map((count) => serialized({ batch: Array(count).fill({}) })) },
);

const CALLS = ["batch", "track", "identify", "group", "alias", "page", "screen"] as const;
const route = fc.oneof(
  fc.constantFrom({ path: "/segment", auth: "signature" as const }, { path: "/segment", auth: "basic" as const }),
  fc.constantFrom(...CALLS).map((call) => ({ path: `/v1/${call}`, auth: "basic" as const })),
);

async function request(path: string, auth: "signature" | "basic", body: string | Uint8Array): Promise<Request> {
  const text = typeof body === "string" ? body : new TextDecoder().decode(body);
  // What Segment signs is the text the bridge will read; for bytes that are not UTF-8 that is the decoded text.
  const headers: Record<string, string> =
    auth === "signature" ? { "X-Signature": await hmacSha1Hex(SECRET, text) } : { Authorization: basic(SECRET) };
  return new Request(`http://bridge${path}`, { method: "POST", body, headers });
}

interface Result {
  messageId: string | null;
  index: number;
  outcome: string;
  error?: string;
}

describe("POST /segment and /v1/* under fuzzing", () => {
  const test = "never crash, refuse with named JSON errors, and send Vero nothing they refuse";
  it(test, async () => {
    const prototypeBefore = prototypeSnapshot();
    const { env: base, writeKey } = await isolatedEnv();
    const outcomes = new Map<string, number>();
    const count = (key: string) => outcomes.set(key, (outcomes.get(key) ?? 0) + 1);

    const property = fc.asyncProperty(route, outboundBody, async ({ path, auth }, body) => {
      const veroToken = await vero.tenant();
      const env: Env = { ...base, VERO_AUTH_TOKEN: veroToken };
      const response = await callWorker(await request(path, auth, body), env);
      const text = await response.text();
      expect(response.headers.get("content-type"), text).toContain("application/json");
      const json: unknown = JSON.parse(text);
      const calls = await vero.calls(veroToken);

      if (response.status >= 400) {
        const { error } = json as { error: { status: number; code: string; message: string } };
        expect(json, text).toMatchObject({ ok: false, error: { status: response.status } });
        expect(error.message, text).toMatch(/\S/);
        if (response.status >= 500) expect(response.status === 503 && DELIBERATE_503.has(error.code), text).toBe(true);
        // Vero's own refusal would mean the bridge let through what Vero refuses (an id over 255 characters...).
        expect(error.code, text).not.toBe("vero_rejected");
        if (REFUSED_BEFORE_VERO.has(error.code)) expect(calls, text).toEqual([]);
        count(error.code);
        return;
      }
      const { results } = json as { ok: true; results: Result[] };
      // Taken by the users' mailboxes (202), which callWorker waits for; 200 when none was deliverable.
      const delivered = results.filter((result) => result.outcome === "queued").length;
      expect(response.status, text).toBe(delivered > 0 ? 202 : 200);
      for (const result of results) {
        expect(["queued", "skipped", "invalid"], text).toContain(result.outcome);
        if (result.outcome === "invalid") expect(result.error, text).toMatch(/\S/);
      }
      // One call per delivered event, two with tags; none for invalid or skipped neighbours.
      expect(
        calls.every((call) => call.status === 200),
        text,
      ).toBe(true);
      // A messageId twice in one request is delivered once: the mailbox skips what it holds.
      const distinct = new Set(
        results.filter((result) => result.outcome === "queued").map((r) => r.messageId ?? r.index),
      );
      expect(calls.length, text).toBeGreaterThanOrEqual(distinct.size);
      expect(calls.length, text).toBeLessThanOrEqual(2 * delivered);
      count(delivered === 0 ? "skipped" : results.length === delivered ? "delivered" : "delivered_some");
    });

    const { lines } = await capturingLogs(() => checkProperty(property, { file: FILE, test, numRuns: 1_000 }));
    console.info(`fuzz ${FILE} (seed ${FUZZ_SEED}): ${JSON.stringify(Object.fromEntries(outcomes))}`);
    expectNoUnexpectedErrors(lines);

    // Outbound never calls Segment, whatever it is sent.
    expect(await segment.calls(writeKey)).toEqual([]);
    expectPrototypesClean(prototypeBefore);
    const summary = JSON.stringify(Object.fromEntries(outcomes));
    expect(outcomes.get("delivered") ?? 0, summary).toBeGreaterThanOrEqual(100);
    expect(outcomes.get("delivered_some") ?? 0, summary).toBeGreaterThan(0);
    expect(outcomes.get("skipped") ?? 0, summary).toBeGreaterThan(0);
    expect(outcomes.get("invalid_event") ?? 0, summary).toBeGreaterThanOrEqual(100);
    expect(outcomes.get("bad_request") ?? 0, summary).toBeGreaterThanOrEqual(50);
  }, 180_000);
});
