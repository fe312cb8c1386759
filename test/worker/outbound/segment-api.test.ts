/**
 * `/v1/*` as Segment's server libraries see it: one test per rule of the
 * table in docs/reference.md (path, where the write key travels, what the
 * library takes for success, where it reads an error), written from each
 * library's published source. The libraries that install from npm also run
 * for real in test/node/sdk.test.ts.
 */
import { env as bindings } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { TRACKING_API_LIMITS } from "../../../src/outbound/contract.ts";
import type { Env } from "../../../src/shared/env.ts";
import { basic, callWorker, expectJsonError, isolatedEnv, vero } from "../helpers/env.ts";
import { capturingLogs } from "../helpers/fuzz.ts";
import { recordingQueue } from "../helpers/recording-queue.ts";

const SECRET = "dev-segment-shared-secret-for-local-use";
const SINGLE_CALLS = ["track", "identify", "group", "alias", "page", "screen"] as const;

const track = (messageId: string, userId = "u-1") => ({
  type: "track",
  messageId,
  userId,
  event: "Signed Up",
  timestamp: "2024-05-30T04:46:31.000Z",
});

/** One valid event per single call, without `type`: the path says it. */
const SINGLE_EVENTS: Record<(typeof SINGLE_CALLS)[number], Record<string, unknown>> = {
  track: { userId: "u-1", event: "Signed Up" },
  identify: { userId: "u-1", traits: { email: "jane@example.com" } },
  group: { userId: "u-1", groupId: "g-1", traits: { name: "Acme" } },
  alias: { previousId: "old-1", userId: "u-1" },
  page: { userId: "u-1", name: "Home" },
  screen: { userId: "u-1", name: "Home" },
};

async function gzip(text: string): Promise<Uint8Array> {
  return new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"))).bytes();
}

function post(env: Env, path: string, body: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
  return callWorker(
    new Request(`http://bridge${path}`, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", ...headers },
    }),
    env,
  );
}

/** The exact answer the strictest libraries (analytics-python 2.3, analytics-php, Analytics.NET) need. */
async function expectSegmentSuccess(response: Response): Promise<{ results: { outcome: string; error?: string }[] }> {
  const text = await response.text();
  expect(response.status, text).toBe(200);
  const body = JSON.parse(text) as { success: unknown; results: { outcome: string; error?: string }[] };
  expect(body.success, text).toBe(true);
  return body;
}

/** A queue binding that records, so that queue mode answers without a consumer running. */
async function queuedEnv(): Promise<{ env: Env; sent: unknown[] }> {
  const { env } = await isolatedEnv({}, { queued: true });
  const { queue, sent } = recordingQueue();
  return { env: { ...env, VERO_QUEUE: queue }, sent };
}

async function refusedCount(name: string): Promise<number> {
  const db = (bindings as unknown as { LEDGER: D1Database }).LEDGER;
  const row = await db
    .prepare(
      "SELECT COALESCE(SUM(count), 0) AS total FROM counters WHERE direction = 'outbound' AND name = ?1 AND outcome = 'refused'",
    )
    .bind(name)
    .first<{ total: number }>();
  return row?.total ?? 0;
}

describe("analytics-python 2.3: POST /v1/batch, writeKey in the body, no Authorization header", () => {
  const pythonBody = (writeKey: string, ...events: unknown[]) =>
    JSON.stringify({ batch: events, sentAt: "2024-05-30T04:46:32.000Z", writeKey });

  it("delivers a batch authenticated only by writeKey in the body, answering exactly 200 { success: true }", async () => {
    const { env, veroToken } = await isolatedEnv();
    await expectSegmentSuccess(await post(env, "/v1/batch", pythonBody(SECRET, track("py-1"))));
    expect((await vero.accepted(veroToken)).map((call) => call.path)).toEqual(["/api/v2/events/track"]);
  });

  it("delivers the same body gzipped (its gzip option)", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = await gzip(pythonBody(SECRET, track("py-gz")));
    await expectSegmentSuccess(await post(env, "/v1/batch", body, { "content-encoding": "gzip" }));
    expect(await vero.accepted(veroToken)).toHaveLength(1);
  });

  it("refuses a wrong writeKey with 401 and top-level code and message strings, where the library reads them", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await post(env, "/v1/batch", pythonBody("not-the-secret", track("py-2")));
    const body = await expectJsonError(response, 401);
    expect(body.code).toBe("unauthorized");
    expect(body.message).toMatch(/wrong writeKey/);
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("refuses a body with neither Authorization nor writeKey with 401 naming both", async () => {
    const { env } = await isolatedEnv();
    const body = await expectJsonError(await post(env, "/v1/batch", JSON.stringify({ batch: [track("py-3")] })), 401);
    expect(body.message).toMatch(/Authorization: Basic header or writeKey in the body/);
  });

  it("takes writeKey in a single call's body too", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = JSON.stringify({ ...SINGLE_EVENTS.track, messageId: "py-single", writeKey: SECRET });
    await expectSegmentSuccess(await post(env, "/v1/track", body));
    expect(await vero.accepted(veroToken)).toHaveLength(1);
  });
});

describe("a shared secret under rotation", () => {
  const OLD = "old-shared-secret-0123456789abcdef0123";
  const NEW = "new-shared-secret-fedcba9876543210fedc";

  it("accepts either value as writeKey, Basic user name (/v1/*) and Bearer token (/segment), and no third", async () => {
    const { env, veroToken } = await isolatedEnv({ SEGMENT_SHARED_SECRET: `${OLD},${NEW}` });
    for (const [index, secret] of [OLD, NEW].entries()) {
      const withKey = JSON.stringify({ batch: [track(`rot-key-${index}`)], writeKey: secret });
      await expectSegmentSuccess(await post(env, "/v1/batch", withKey));
      const plain = JSON.stringify({ batch: [track(`rot-basic-${index}`)] });
      await expectSegmentSuccess(await post(env, "/v1/import", plain, { authorization: basic(secret) }));
      const array = JSON.stringify([track(`rot-bearer-${index}`)]);
      const bearer = await post(env, "/segment", array, { authorization: `Bearer ${secret}` });
      expect(bearer.status, await bearer.text()).toBe(202);
    }
    const third = JSON.stringify({ batch: [track("rot-third")], writeKey: "third-shared-secret-0123456789abcdef01" });
    await expectJsonError(await post(env, "/v1/batch", third), 401);
    expect(await vero.accepted(veroToken)).toHaveLength(6);
  });
});

describe("analytics-ruby, Analytics.NET: POST /v1/import with Basic", () => {
  it("serves /v1/import as /v1/batch, answering exactly 200 { success: true }", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = JSON.stringify({ sentAt: "2024-05-30T04:46:32.000Z", batch: [track("rb-1")] });
    await expectSegmentSuccess(await post(env, "/v1/import", body, { authorization: basic(SECRET) }));
    expect(await vero.accepted(veroToken)).toHaveLength(1);
  });

  it("names the problem under error as well (analytics-ruby reads error)", async () => {
    const { env } = await isolatedEnv();
    const body = JSON.stringify({ batch: [track("rb-2")] });
    const error = await expectJsonError(await post(env, "/v1/import", body, { authorization: basic("wrong") }), 401);
    expect(error.error).toMatchObject({ code: "unauthorized", message: error.message });
  });
});

describe("analytics-java: POST /v1/import/ (with the slash), Basic, gzip", () => {
  it("delivers a gzipped batch posted to /v1/import/", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = await gzip(JSON.stringify({ batch: [track("java-1")], sentAt: "2024-05-30T04:46:32.000Z" }));
    const response = await post(env, "/v1/import/", body, { authorization: basic(SECRET), "content-encoding": "gzip" });
    await expectSegmentSuccess(response);
    expect(await vero.accepted(veroToken)).toHaveLength(1);
  });
});

describe("analytics-go, analytics-php, analytics-node: POST /v1/batch with Basic", () => {
  it("answers exactly 200 with a JSON body (analytics-php and Analytics.NET take nothing else for success)", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = JSON.stringify({ batch: [track("php-1"), track("php-2", "u-2")] });
    const response = await post(env, "/v1/batch", body, { authorization: basic(SECRET) });
    expect(response.headers.get("content-type")).toContain("application/json");
    await expectSegmentSuccess(response);
    expect(await vero.accepted(veroToken)).toHaveLength(2);
  });

  it("refuses a wrong Basic user name before reading the body", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await post(env, "/v1/batch", "not even JSON", { authorization: basic("wrong") });
    expect((await expectJsonError(response, 401)).message).toMatch(/wrong Basic credentials/);
    expect(await vero.calls(veroToken)).toEqual([]);
  });
});

describe("every path answers exactly 200 { success: true }, in direct and in queue mode", () => {
  for (const path of ["/v1/batch", "/v1/import", "/v1/import/"]) {
    it(`${path}`, async () => {
      const direct = await isolatedEnv();
      const body = JSON.stringify({ batch: [track(`path-${path}`)] });
      await expectSegmentSuccess(await post(direct.env, path, body, { authorization: basic(SECRET) }));
      expect(await vero.accepted(direct.veroToken)).toHaveLength(1);
      const queued = await queuedEnv();
      const answer = await expectSegmentSuccess(await post(queued.env, path, body, { authorization: basic(SECRET) }));
      expect(answer.results.map((result) => result.outcome)).toEqual(["queued"]);
      expect(queued.sent).toHaveLength(1);
    });
  }
  for (const call of SINGLE_CALLS) {
    it(`/v1/${call}`, async () => {
      const direct = await isolatedEnv();
      const body = JSON.stringify({ ...SINGLE_EVENTS[call], messageId: `single-${call}` });
      await expectSegmentSuccess(await post(direct.env, `/v1/${call}`, body, { authorization: basic(SECRET) }));
      expect(await vero.accepted(direct.veroToken)).toHaveLength(1);
      const queued = await queuedEnv();
      await expectSegmentSuccess(await post(queued.env, `/v1/${call}`, body, { authorization: basic(SECRET) }));
      expect(queued.sent).toHaveLength(1);
    });
  }
});

describe("a batch mixing valid and invalid events", () => {
  it("answers 200, delivers the valid ones, and counts and logs each invalid one as a refusal", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const invalid = { type: "alias", messageId: "mixed-bad", userId: "u-9" };
    const before = await refusedCount("alias");
    const { result: response, lines } = await capturingLogs(() =>
      post(env, "/v1/batch", JSON.stringify({ batch: [track("mixed-1"), invalid, track("mixed-2", "u-2")] }), {
        authorization: basic(SECRET),
      }),
    );
    const body = await expectSegmentSuccess(response);
    expect(body.results.map((result) => result.outcome)).toEqual(["queued", "invalid", "queued"]);
    expect(await vero.accepted(veroToken)).toHaveLength(2);
    expect(await refusedCount("alias")).toBe(before + 1);
    const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logged).toContainEqual(expect.objectContaining({ level: "warn", msg: "outbound request", invalid: 1 }));
  });
});

describe("Segment's size limits, answered as Segment answers them", () => {
  const padded = (bytes: number) => ({ ...track("big"), properties: { pad: "x".repeat(bytes) } });

  it(`a batch over ${TRACKING_API_LIMITS.batchBytes} bytes: 400 with top-level code and message, nothing sent`, async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = JSON.stringify({ batch: [padded(TRACKING_API_LIMITS.batchBytes)] });
    const error = await expectJsonError(await post(env, "/v1/batch", body, { authorization: basic(SECRET) }), 400);
    expect(error.code).toBe("payload_too_large");
    expect(error.message).toMatch(/500 KB/);
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it(`a single call over ${TRACKING_API_LIMITS.eventBytes} bytes: 400, nothing sent`, async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = JSON.stringify(padded(TRACKING_API_LIMITS.eventBytes));
    const error = await expectJsonError(await post(env, "/v1/track", body, { authorization: basic(SECRET) }), 400);
    expect(error.message).toMatch(/32 KB/);
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("an event over 32 KB inside a batch: refused on its own with 200, its neighbour delivered", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = JSON.stringify({ batch: [padded(TRACKING_API_LIMITS.eventBytes), track("small")] });
    const answer = await expectSegmentSuccess(await post(env, "/v1/batch", body, { authorization: basic(SECRET) }));
    expect(answer.results[0]).toMatchObject({
      outcome: "invalid",
      error: expect.stringMatching(/over Segment's 32768 bytes/),
    });
    expect(answer.results[1]).toMatchObject({ outcome: "queued" });
    expect(await vero.accepted(veroToken)).toHaveLength(1);
  });

  it("a body that is not JSON: 400 with top-level code and message", async () => {
    const { env } = await isolatedEnv();
    const error = await expectJsonError(await post(env, "/v1/batch", "{nope", { authorization: basic(SECRET) }), 400);
    expect(error).toMatchObject({ code: "bad_request", message: "the body is not valid JSON" });
  });
});

describe("an empty batch", () => {
  it("answers 200 { success: true } with no results on /v1/batch, as Segment's API does, and 400 on /segment", async () => {
    const { env, veroToken } = await isolatedEnv();
    const answer = await expectSegmentSuccess(
      await post(env, "/v1/batch", JSON.stringify({ batch: [] }), { authorization: basic(SECRET) }),
    );
    expect(answer.results).toEqual([]);
    const webhook = await post(env, "/segment", "[]", { authorization: basic(SECRET) });
    expect((await expectJsonError(webhook, 400)).message).toBe("the request holds no events");
    expect(await vero.calls(veroToken)).toEqual([]);
  });
});
