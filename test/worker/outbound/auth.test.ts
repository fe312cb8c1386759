/** `/segment` and `/v1/*`: X-Signature over the raw body or over the first event, Basic, Bearer, and each one's challenge. */
import { describe, expect, it, vi } from "vitest";
import type { Env } from "../../../src/shared/env.ts";
import { exceedsDepth } from "../../../src/shared/json.ts";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";
import { challenge, expectNothingSent, TRACK_SIGNATURE, track } from "../helpers/auth.ts";
import { basic, callWorker, expectJsonError, isolatedEnv, vero } from "../helpers/env.ts";
import { nestedText } from "../helpers/fuzz.ts";

/** The one Vero call `track` stands for. */
const trackCall = {
  method: "POST",
  path: "/api/v2/events/track",
  body: expect.objectContaining({ event_name: "Signed Up" }),
};

/** Taken by the user's mailbox (202; /v1/* answers 200, as Segment's API does); callWorker waits for the mailbox to deliver it. */
async function expectDelivered(response: Response, status = 202) {
  expect(response.status, await response.text()).toBe(status);
}

describe("POST /segment", () => {
  const secret = "dev-segment-shared-secret-for-local-use";

  it("returns 401 without a signature or Basic credentials, and sends nothing", async () => {
    const { env, writeKey, veroToken } = await isolatedEnv();
    const response = await callWorker(new Request("http://bridge/segment", { method: "POST", body: track }), env);
    expect((await expectJsonError(response, 401)).error.message).toMatch(
      /missing Authorization \(Basic or Bearer\) or X-Signature/,
    );
    await expectNothingSent(writeKey, veroToken);
  });

  it("returns 401 when X-Signature is not the body's HMAC, and sends nothing", async () => {
    const { env, writeKey, veroToken } = await isolatedEnv();
    const signature = await hmacSha1Hex("another secret", track);
    const response = await callWorker(
      new Request("http://bridge/segment", { method: "POST", body: track, headers: { "X-Signature": signature } }),
      env,
    );
    await expectJsonError(response, 401);
    await expectNothingSent(writeKey, veroToken);
  });

  it("returns 401 when the signature was made over another body", async () => {
    const { env } = await isolatedEnv();
    const signature = await hmacSha1Hex(secret, track);
    const tampered = track.replace("u-1", "u-2");
    const response = await callWorker(
      new Request("http://bridge/segment", { method: "POST", body: tampered, headers: { "X-Signature": signature } }),
      env,
    );
    await expectJsonError(response, 401);
  });

  it("returns 401 on wrong Basic credentials", async () => {
    const { env } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/segment", { method: "POST", body: track, headers: { Authorization: basic("nope") } }),
      env,
    );
    await expectJsonError(response, 401);
  });

  it("delivers a request whose X-Signature is the known HMAC-SHA1 of the raw body", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/segment", {
        method: "POST",
        body: track,
        headers: { "X-Signature": TRACK_SIGNATURE },
      }),
      env,
    );
    await expectDelivered(response);
    expect(await vero.accepted(veroToken)).toMatchObject([trackCall]);
  });

  it("accepts the signature in upper case hex", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/segment", {
        method: "POST",
        body: track,
        headers: { "X-Signature": TRACK_SIGNATURE.toUpperCase() },
      }),
      env,
    );
    await expectDelivered(response);
    expect(await vero.accepted(veroToken)).toMatchObject([trackCall]);
  });

  describe("a JSON array (a Webhooks (Actions) batch)", () => {
    // JSON.stringify(events[0]) is `track` itself, so the known answer is its first-event signature.
    const events = [JSON.parse(track), { ...JSON.parse(track), messageId: "m-2", userId: "someone-else" }];
    const signedFirstOnly = (env: Env, body = JSON.stringify(events, null, 2)) =>
      callWorker(
        new Request("http://bridge/segment", { method: "POST", body, headers: { "X-Signature": TRACK_SIGNATURE } }),
        env,
      );

    it("refuses by default an array whose X-Signature covers only its first event (401), and sends nothing", async () => {
      const { env, writeKey, veroToken } = await isolatedEnv();
      const error = await expectJsonError(await signedFirstOnly(env), 401);
      expect(error.message).toMatch(/SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE is off/);
      await expectNothingSent(writeKey, veroToken);
    });

    it("delivers that array when SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE is true", async () => {
      const { env, veroToken } = await isolatedEnv({ SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: "true" });
      await expectDelivered(await signedFirstOnly(env));
      expect(await vero.accepted(veroToken)).toMatchObject([trackCall, trackCall]);
    });

    it("refuses, even with the setting on, a first-event signature whose first event is not the array's", async () => {
      const { env, veroToken } = await isolatedEnv({ SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: "true" });
      await expectJsonError(await signedFirstOnly(env, JSON.stringify(events.toReversed())), 401);
      expect(await vero.calls(veroToken)).toEqual([]);
    });

    it("delivers an array whose X-Signature covers the whole raw body, setting off", async () => {
      const { env, veroToken } = await isolatedEnv();
      const body = JSON.stringify(events);
      const response = await callWorker(
        new Request("http://bridge/segment", {
          method: "POST",
          body,
          headers: { "X-Signature": await hmacSha1Hex(secret, body) },
        }),
        env,
      );
      await expectDelivered(response);
      expect(await vero.accepted(veroToken)).toHaveLength(2);
    });

    it.each([
      ["Basic", basic(secret)],
      ["Bearer", `Bearer ${secret}`],
    ])("delivers an array authenticated by Authorization: %s with the shared secret", async (_scheme, header) => {
      const { env, veroToken } = await isolatedEnv();
      const response = await callWorker(
        new Request("http://bridge/segment", {
          method: "POST",
          body: JSON.stringify(events),
          headers: { Authorization: header },
        }),
        env,
      );
      await expectDelivered(response);
      expect(await vero.accepted(veroToken)).toHaveLength(2);
    });

    it("refuses a wrong Bearer token with 401 and a JSON error naming the scheme", async () => {
      const { env, veroToken } = await isolatedEnv();
      const response = await callWorker(
        new Request("http://bridge/segment", {
          method: "POST",
          body: JSON.stringify(events),
          headers: { Authorization: "Bearer not-the-secret" },
        }),
        env,
      );
      expect((await expectJsonError(response, 401)).message).toMatch(/wrong Bearer token/);
      expect(await vero.calls(veroToken)).toEqual([]);
    });

    it("refuses with 401, without re-serialising it, a wrongly signed array whose first event nests deeper than a stack can walk (Node's stack limit simulated)", async () => {
      // JSON.stringify in Node throws RangeError from a depth of about 5,000; workerd's stack goes further.
      // This double gives the Worker Node's limit, so re-serialising the first event would be a 500 here.
      const realStringify = JSON.stringify;
      const spy = vi.spyOn(JSON, "stringify").mockImplementation(((value: unknown, ...rest: unknown[]) => {
        if (exceedsDepth(value, 5_000)) throw new RangeError("Maximum call stack size exceeded");
        return (realStringify as (...args: unknown[]) => string)(value, ...rest);
      }) as typeof JSON.stringify);
      try {
        const body = `[{"type":"track","userId":"u-1","event":"Deep","properties":{"deep":${nestedText(50_000)}}}]`;
        for (const accepted of ["false", "true"]) {
          const { env, veroToken } = await isolatedEnv({ SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: accepted });
          const response = await callWorker(
            new Request("http://bridge/segment", {
              method: "POST",
              body,
              headers: { "X-Signature": "0".repeat(40) },
            }),
            env,
          );
          await expectJsonError(response, 401);
          expect(await vero.calls(veroToken)).toEqual([]);
        }
      } finally {
        spy.mockRestore();
      }
    });
  });

  it("delivers with correct Basic credentials", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/segment", { method: "POST", body: track, headers: { Authorization: basic(secret) } }),
      env,
    );
    await expectDelivered(response);
    expect(await vero.accepted(veroToken)).toMatchObject([trackCall]);
  });
});

describe("POST /v1/*", () => {
  it.each(["batch", "track", "identify", "group", "alias", "page", "screen"])(
    "returns 401 on /v1/%s without credentials, and sends nothing",
    async (call) => {
      const { env, writeKey, veroToken } = await isolatedEnv();
      const response = await callWorker(new Request(`http://bridge/v1/${call}`, { method: "POST", body: track }), env);
      await expectJsonError(response, 401);
      await expectNothingSent(writeKey, veroToken);
    },
  );

  it("delivers with the shared secret as the Basic username", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/v1/track", {
        method: "POST",
        body: track,
        headers: { Authorization: basic("dev-segment-shared-secret-for-local-use") },
      }),
      env,
    );
    await expectDelivered(response, 200);
    expect(await vero.accepted(veroToken)).toMatchObject([trackCall]);
  });

  it("returns 401 when the Basic username is not the shared secret", async () => {
    const { env } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/v1/track", {
        method: "POST",
        body: track,
        headers: { Authorization: basic("wrong") },
      }),
      env,
    );
    await expectJsonError(response, 401);
  });

  it("does not accept an X-Signature in place of Basic", async () => {
    const { env } = await isolatedEnv();
    const signature = await hmacSha1Hex("dev-segment-shared-secret-for-local-use", track);
    const response = await callWorker(
      new Request("http://bridge/v1/track", { method: "POST", body: track, headers: { "X-Signature": signature } }),
      env,
    );
    await expectJsonError(response, 401);
  });
});

describe("WWW-Authenticate on a 401", () => {
  const post = (path: string, headers: Record<string, string> = {}) =>
    new Request(`http://bridge${path}`, { method: "POST", body: track, headers });

  it("offers Basic and Bearer on /segment, and names the scheme that was tried and failed", async () => {
    const both = 'Basic realm="vero-segment-bridge", Bearer realm="vero-segment-bridge"';
    expect(await challenge(post("/segment"))).toBe(both);
    expect(await challenge(post("/segment", { "X-Signature": "0".repeat(40) }))).toBe(both);
    expect(await challenge(post("/segment", { Authorization: basic("nope") }))).toBe(
      'Basic realm="vero-segment-bridge"',
    );
    expect(await challenge(post("/segment", { Authorization: "Bearer nope" }))).toBe(
      'Bearer realm="vero-segment-bridge"',
    );
  });

  it("offers Basic on /v1/*, as Segment's API takes the write key", async () => {
    expect(await challenge(post("/v1/track"))).toBe('Basic realm="vero-segment-bridge"');
    expect(await challenge(post("/v1/track", { Authorization: basic("nope") }))).toBe(
      'Basic realm="vero-segment-bridge"',
    );
  });
});
