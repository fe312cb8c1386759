/**
 * POST /vero/webhook against hostile input, authenticated so that every
 * input reaches parsing and mapping. Valid inputs really go to the Segment
 * stand-in; each run has its own Segment tenant, so "a refused request
 * sent nothing" is checked run by run.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Env } from "../../../src/shared/env.ts";
import { callWorker, isolatedEnv, segment, vero } from "../helpers/env.ts";
import {
  capturingLogs,
  checkProperty,
  expectNoUnexpectedErrors,
  expectPrototypesClean,
  FUZZ_SEED,
  hostileJson,
  mutated,
  nestedText,
  prototypeSnapshot,
} from "../helpers/fuzz.ts";
import { ALL_CASES } from "../helpers/inbound-cases.ts";

const FILE = "test/worker/inbound/fuzz.test.ts";
const TOKEN = "dev-vero-webhook-token-for-local-use";
const fixtures = ALL_CASES.map((entry) => entry.payload);

/** The only 5xx the bridge answers on purpose: Segment could not take the event, and Vero should resend. */
const DELIBERATE_503 = new Set(["segment_unavailable"]);

type Body = string | Uint8Array;

const serialized = (value: unknown): string => JSON.stringify(value) ?? "";

const webhookBody: fc.Arbitrary<Body> = fc.oneof(
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 200 }) },
  { weight: 2, arbitrary: hostileJson.map(serialized) },
  { weight: 7, arbitrary: mutated(fixtures).map(serialized) },
  { weight: 1, arbitrary: mutated(fixtures).map((value) => encodeURIComponent(serialized(value))) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(31, 33, 1_000, 200_000)
      .map((depth) => `{"type":"opened","user":{"id":1},"deep":${nestedText(depth)}}`),
  },
);

const contentType = fc.option(
  fc.constantFrom(
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=x",
  ),
  { nil: undefined },
);

interface ErrorShape {
  ok: false;
  error: { status: number; code: string; message: string };
}

describe("POST /vero/webhook under fuzzing", () => {
  const test = "never crashes, refuses with named JSON errors, and sends nothing it refuses";
  it(test, async () => {
    const prototypeBefore = prototypeSnapshot();
    const { env: base, veroToken } = await isolatedEnv();
    const outcomes = new Map<string, number>();

    const property = fc.asyncProperty(webhookBody, contentType, async (body, type) => {
      const writeKey = await segment.tenant();
      const env: Env = { ...base, SEGMENT_WRITE_KEY: writeKey };
      const headers: Record<string, string> = type === undefined ? {} : { "content-type": type };
      const response = await callWorker(
        new Request(`http://bridge/vero/webhook?token=${TOKEN}`, { method: "POST", body, headers }),
        env,
      );
      const text = await response.text();
      expect(response.headers.get("content-type"), text).toContain("application/json");
      const json: unknown = JSON.parse(text);
      const calls = await segment.calls(writeKey);

      if (response.status >= 400) {
        const error = (json as ErrorShape).error;
        expect(json, text).toMatchObject({ ok: false, error: { status: response.status } });
        expect(error.message, text).toMatch(/\S/);
        if (response.status >= 500) expect(response.status === 503 && DELIBERATE_503.has(error.code), text).toBe(true);
        // Only Segment's own refusal of the event may have reached it (and it did not accept it).
        if (error.code === "segment_rejected")
          expect(
            calls.every((call) => call.status >= 400),
            text,
          ).toBe(true);
        else if (response.status < 500) expect(calls, text).toEqual([]);
        outcomes.set(error.code, (outcomes.get(error.code) ?? 0) + 1);
        return;
      }
      expect(response.status, text).toBe(200);
      const ok = json as { ok: true; ignored?: string; messageId?: string };
      expect(ok.ok, text).toBe(true);
      if (ok.ignored !== undefined) {
        expect(calls, text).toEqual([]);
        outcomes.set("ignored", (outcomes.get("ignored") ?? 0) + 1);
        return;
      }
      const accepted = JSON.stringify(calls.filter((call) => call.status === 200).map((call) => call.body));
      expect(accepted, text).toContain(ok.messageId);
      outcomes.set("delivered", (outcomes.get("delivered") ?? 0) + 1);
    });

    const { lines } = await capturingLogs(() => checkProperty(property, { file: FILE, test, numRuns: 1_000 }));
    console.info(`fuzz ${FILE} (seed ${FUZZ_SEED}): ${JSON.stringify(Object.fromEntries(outcomes))}`);
    expectNoUnexpectedErrors(lines);

    // Inbound never calls Vero, whatever it is sent.
    expect(await vero.calls(veroToken)).toEqual([]);
    expectPrototypesClean(prototypeBefore);
    // The generators must reach every stage, or the invariants above prove little.
    const summary = Object.fromEntries(outcomes);
    expect(summary.delivered ?? 0, JSON.stringify(summary)).toBeGreaterThanOrEqual(100);
    expect(summary.bad_request ?? 0, JSON.stringify(summary)).toBeGreaterThanOrEqual(100);
    expect(summary.ignored ?? 0, JSON.stringify(summary)).toBeGreaterThan(0);
  }, 180_000);
});
