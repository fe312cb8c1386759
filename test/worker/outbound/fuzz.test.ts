/**
 * POST /segment and POST /v1/* against hostile input, authenticated (a
 * real X-Signature, or Basic) so that every input reaches parsing and
 * mapping. Valid events really go to the Vero stand-in; each run has its
 * own Vero tenant, so "a refused request sent nothing" is checked run by run.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Env } from "../../../src/shared/env.ts";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";
import { basic, callWorker, isolatedEnv, segment, vero } from "../helpers/env.ts";
import {
  capturingLogs,
  checkProperty,
  expectNoUnexpectedErrors,
  expectPrototypesClean,
  FUZZ_SEED,
  hostileJson,
  hostileString,
  hostileValue,
  mutated,
  nestedText,
  prototypeSnapshot,
} from "../helpers/fuzz.ts";
import { SEGMENT_EVENTS, SKIPPED_EVENTS } from "../helpers/segment-events.ts";

const FILE = "test/worker/outbound/fuzz.test.ts";
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
      // A Vero account per run too: the mailboxes are named by account and user, and runs reuse the fixtures' messageIds.
      const env: Env = { ...base, VERO_AUTH_TOKEN: veroToken, VERO_ACCOUNT: `fuzz-${crypto.randomUUID()}` };
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
      // /v1/* answers 200 whatever it took, as Segment's API does.
      expect(response.status, text).toBe(delivered > 0 && !path.startsWith("/v1/") ? 202 : 200);
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

/** Every outbound path, /v1/import/ (analytics-java's) included. */
const OUTBOUND_PATHS = [
  "/segment",
  ...["batch", "import", "import/", "track", "identify", "group", "alias", "page", "screen"].map(
    (call) => `/v1/${call}`,
  ),
];

const base64 = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));
/** What a caller might present as the secret: anything but the secret itself. */
const wrongSecret = fc
  .oneof(
    hostileString,
    fc.constantFrom("", SECRET.slice(0, -1), `${SECRET}x`, SECRET.toUpperCase(), ` ${SECRET}`, `${SECRET}\u0000`),
  )
  .filter((value) => value !== SECRET);
/** Header values a fetch Request accepts: printable ASCII. */
const headerText = fc.string({ unit: "grapheme-ascii", maxLength: 60 });

type Credential =
  | { kind: "basic" | "bearer" | "authorization" | "signature"; headers: Record<string, string> }
  | { kind: "writeKey"; writeKey: unknown }
  | { kind: "none" };

const credential: fc.Arbitrary<Credential> = fc.oneof(
  wrongSecret.map((secret) => ({
    kind: "basic" as const,
    headers: { Authorization: `Basic ${base64(`${secret}:`)}` },
  })),
  headerText.map((token) => ({ kind: "bearer" as const, headers: { Authorization: `Bearer ${token}` } })),
  headerText.map((value) => ({ kind: "authorization" as const, headers: { Authorization: value } })),
  fc
    .oneof(fc.stringMatching(/^[0-9a-f]{40}$/), headerText)
    .map((signature) => ({ kind: "signature" as const, headers: { "X-Signature": signature } })),
  fc.oneof(wrongSecret, hostileValue).map((writeKey) => ({ kind: "writeKey" as const, writeKey })),
  fc.constant({ kind: "none" as const }),
);

/** Bodies that reach authentication, as sent: events, batches, arrays, and arrays whose first event nests deep. */
const credentialBody: fc.Arbitrary<string> = fc.oneof(
  event.map(serialized),
  eventList.map(serialized),
  eventList.map((batch) => serialized({ batch })),
  hostileJson.map(serialized),
  fc
    .constantFrom(40, 6_000, 50_000)
    .map(
      (depth) =>
        `[{"type":"track","userId":"u-1","event":"Deep","properties":{"deep":${nestedText(depth)}}},{"type":"delete","userId":"someone-else"}]`,
    ),
);

/** `text` with `writeKey` added at its top level (an object), or as `{ batch: text, writeKey }`. */
function withWriteKey(text: string, writeKey: unknown): string {
  const key = `"writeKey":${serialized(writeKey) || "null"}`;
  if (!text.startsWith("{")) return `{"batch":${text || "null"},${key}}`;
  const rest = text.slice(1);
  return `{${key}${rest.startsWith("}") ? "" : ","}${rest}`;
}

function credentialRequest(path: string, presented: Credential, text: string): Request {
  const body = presented.kind === "writeKey" ? withWriteKey(text, presented.writeKey) : text;
  const headers = "headers" in presented ? presented.headers : {};
  return new Request(`http://bridge${path}`, { method: "POST", body, headers });
}

/**
 * A stand-in call after seconds without one: the stand-in's server may have closed the pooled
 * connection as it idled (Node's keep-alive timeout), which workerd reports as a lost connection
 * on its first reuse. One retry opens a new one.
 */
async function afterIdle<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!String(error).includes("Network connection lost")) throw error;
    return call();
  }
}

describe("POST /segment and /v1/* under fuzzing with wrong credentials", () => {
  for (const path of OUTBOUND_PATHS) {
    const test = `${path}: 1,000 wrong signatures, Basic, Bearer and writeKeys are each a JSON 401 (or Segment's 400 for size), never a 5xx or an error log line, and reach nothing`;
    it(test, async () => {
      const { env: base, writeKey, veroToken } = await isolatedEnv();
      const statuses = new Map<string, number>();
      const property = fc.asyncProperty(credential, credentialBody, fc.boolean(), async (presented, body, accept) => {
        const env: Env = { ...base, SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: accept ? "true" : "false" };
        const response = await callWorker(credentialRequest(path, presented, body), env);
        const text = await response.text();
        const json = JSON.parse(text) as { code: string; message: string; error: { code: string } };
        expect(response.status < 500, text).toBe(true);
        expect(json, text).toMatchObject({ ok: false, code: json.error.code, message: expect.stringMatching(/\S/) });
        const sizeRefusal = response.status === 400 && json.code === "payload_too_large" && path.startsWith("/v1/");
        expect(response.status === 401 || sizeRefusal, text).toBe(true);
        statuses.set(
          `${presented.kind} ${response.status}`,
          (statuses.get(`${presented.kind} ${response.status}`) ?? 0) + 1,
        );
      });
      const { lines } = await capturingLogs(() => checkProperty(property, { file: FILE, test, numRuns: 1_000 }));
      expect(lines.filter((line) => line.includes('"level":"error"'))).toEqual([]);
      expect(await afterIdle(() => vero.calls(veroToken))).toEqual([]);
      expect(await afterIdle(() => segment.calls(writeKey))).toEqual([]);
      // Each kind of credential was tried and refused.
      for (const kind of ["basic", "bearer", "authorization", "signature", "writeKey", "none"])
        expect(
          [...statuses.keys()].some((key) => key.startsWith(`${kind} 401`)),
          JSON.stringify([...statuses]),
        ).toBe(true);
    }, 120_000);
  }
});
