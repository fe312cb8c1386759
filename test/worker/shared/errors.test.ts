import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { TRACKING_API_LIMITS, WEBHOOK_MAX_BODY_BYTES } from "../../../src/outbound/contract.ts";
import { retryAfterSeconds } from "../../../src/shared/errors.ts";
import { type AppEnv, MAX_BODY_BYTES, renderError } from "../../../src/shared/http.ts";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";
import { baseEnv, basic, callWorker, expectJsonError, isolatedEnv, segment } from "../helpers/env.ts";

const secret = "dev-segment-shared-secret-for-local-use";
const oversized = `{"type":"opened","pad":"${"x".repeat(MAX_BODY_BYTES)}"}`;

describe("request size", () => {
  it("returns 413 on /vero/webhook over 1 MiB, and sends nothing", async () => {
    const { env, writeKey } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/vero/webhook?token=dev-vero-webhook-token-for-local-use", {
        method: "POST",
        body: oversized,
      }),
      env,
    );
    expect((await expectJsonError(response, 413)).error.message).toMatch(/1 MiB/);
    expect(await segment.calls(writeKey)).toEqual([]);
  });

  it("answers a streamed body with no Content-Length over /v1/track's 32 KB with Segment's 400", async () => {
    const bytes = new TextEncoder().encode(oversized);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let offset = 0; offset < bytes.length; offset += 64 * 1024)
          controller.enqueue(bytes.slice(offset, offset + 64 * 1024));
        controller.close();
      },
    });
    const response = await callWorker(
      new Request("http://bridge/v1/track", {
        method: "POST",
        body: stream,
        headers: { Authorization: basic(secret) },
      }),
    );
    const body = await expectJsonError(response, 400);
    expect(body.error.message).toMatch(`over ${TRACKING_API_LIMITS.eventBytes} bytes`);
  });

  it("returns 413 on /segment over 10 MiB, before the signature is computed", async () => {
    const response = await callWorker(
      new Request("http://bridge/segment", {
        method: "POST",
        body: `[${"0,".repeat(WEBHOOK_MAX_BODY_BYTES / 2)}0]`,
        headers: { "X-Signature": await hmacSha1Hex(secret, "whatever") },
      }),
    );
    await expectJsonError(response, 413);
  });

  it("answers /v1/batch over 500 KB with Segment's 400, top-level code and message included", async () => {
    const response = await callWorker(
      new Request("http://bridge/v1/batch", {
        method: "POST",
        body: oversized,
        headers: { Authorization: basic(secret) },
      }),
    );
    const body = await expectJsonError(response, 400);
    expect(body).toMatchObject({ code: "payload_too_large", message: body.error.message });
  });
});

describe("missing settings", () => {
  it("returns 503 on inbound naming exactly the unset settings", async () => {
    const { SEGMENT_WRITE_KEY: _, VERO_WEBHOOK_TOKEN: __, ...env } = baseEnv;
    const response = await callWorker(
      new Request("http://bridge/vero/webhook?token=x", { method: "POST", body: "{}" }),
      env,
    );
    const body = await expectJsonError(response, 503);
    expect(body.error.message).toBe("inbound is not configured: set SEGMENT_WRITE_KEY, VERO_WEBHOOK_TOKEN");
    expect(body.error.details).toEqual({ missing: ["SEGMENT_WRITE_KEY", "VERO_WEBHOOK_TOKEN"], invalid: [] });
  });

  it("returns 503 on outbound naming the shared secret and either Vero credential", async () => {
    const { SEGMENT_SHARED_SECRET: _, VERO_AUTH_TOKEN: __, ...env } = baseEnv;
    for (const path of ["/segment", "/v1/track"]) {
      const response = await callWorker(new Request(`http://bridge${path}`, { method: "POST", body: "{}" }), env);
      expect((await expectJsonError(response, 503)).error.message).toBe(
        "outbound is not configured: set SEGMENT_SHARED_SECRET, VERO_AUTH_TOKEN or VERO_TRACKING_API_KEY",
      );
    }
  });

  it("treats an empty secret as unset", async () => {
    const response = await callWorker(
      new Request("http://bridge/vero/webhook?token=x", { method: "POST", body: "{}" }),
      {
        ...baseEnv,
        SEGMENT_WRITE_KEY: "  ",
      },
    );
    expect((await expectJsonError(response, 503)).error.message).toBe(
      "inbound is not configured: set SEGMENT_WRITE_KEY",
    );
  });

  it("returns 503 naming a setting that is set but invalid", async () => {
    const response = await callWorker(
      new Request("http://bridge/vero/webhook?token=x", { method: "POST", body: "{}" }),
      {
        ...baseEnv,
        SEGMENT_API_HOST: "api.segment.io",
      },
    );
    expect((await expectJsonError(response, 503)).error.message).toBe(
      "inbound is not configured: fix SEGMENT_API_HOST must be an http(s) URL",
    );
  });

  it("keeps the configured direction working when the other is not", async () => {
    const { SEGMENT_WRITE_KEY: _, ...env } = baseEnv;
    const response = await callWorker(new Request("http://bridge/v1/track", { method: "POST", body: "{}" }), env);
    // Outbound answers with its own logic (401 here: no credentials), not the inbound 503.
    await expectJsonError(response, 401);
  });
});

describe("routing", () => {
  it("returns a JSON 404 for an unknown path", async () => {
    const body = await expectJsonError(await callWorker(new Request("http://bridge/nope")), 404);
    expect(body.error.message).toBe("no route for GET /nope");
  });

  it("returns a JSON 404 for an unknown /v1 call", async () => {
    await expectJsonError(await callWorker(new Request("http://bridge/v1/export", { method: "POST" })), 404);
  });

  for (const [method, path, allow] of [
    ["GET", "/vero/webhook", "POST"],
    ["PUT", "/segment", "POST"],
    ["OPTIONS", "/segment", "POST"],
    ["HEAD", "/v1/track", "POST"],
    ["DELETE", "/v1/batch", "POST"],
    ["POST", "/health", "GET, HEAD"],
    ["OPTIONS", "/health", "GET, HEAD"],
  ] as const) {
    it(`returns a JSON 405 for ${method} ${path}, with Allow: ${allow}`, async () => {
      const response = await callWorker(new Request(`http://bridge${path}`, { method }));
      expect(response.status).toBe(405);
      expect(response.headers.get("Allow")).toBe(allow);
      if (method !== "HEAD") await expectJsonError(response, 405);
    });
  }

  it("lets an authenticated /v1/track past authentication and answers it in JSON", async () => {
    const { env } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/v1/track", { method: "POST", body: "{}", headers: { Authorization: basic(secret) } }),
      env,
    );
    expect(response.status).not.toBe(401);
    expect(response.headers.get("content-type")).toContain("application/json");
  });
});

describe("the error path", () => {
  it("renders an unexpected error as a JSON 500 with neither its message nor its stack", async () => {
    const app = new Hono<AppEnv>().get("/boom", () => {
      throw new Error("token=super-secret at handler.ts:12");
    });
    app.onError(renderError);
    const response = await app.request("/boom");
    const body = await expectJsonError(response, 500);
    expect(JSON.stringify(body)).not.toContain("super-secret");
    expect(JSON.stringify(body)).not.toContain("handler.ts");
  });
});

describe("retryAfterSeconds (Retry-After from Segment or Vero)", () => {
  it("reads delay-seconds, rounding a fraction up", () => {
    expect(retryAfterSeconds("7")).toBe(7);
    expect(retryAfterSeconds(" 0 ")).toBe(0);
    expect(retryAfterSeconds("1.2")).toBe(2);
  });

  it("reads an HTTP date as the seconds until then, a past date as 0", () => {
    const inTenSeconds = new Date(Date.now() + 10_000).toUTCString();
    expect(retryAfterSeconds(inTenSeconds)).toBeGreaterThanOrEqual(9);
    expect(retryAfterSeconds(inTenSeconds)).toBeLessThanOrEqual(10);
    expect(retryAfterSeconds("Wed, 21 Oct 2015 07:28:00 GMT")).toBe(0);
  });

  it("is undefined when absent, empty, negative or unreadable", () => {
    for (const header of [null, undefined, "", "-3", "soon"]) expect(retryAfterSeconds(header)).toBeUndefined();
  });
});
