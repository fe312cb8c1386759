/**
 * Every route that reads a body or a credential, against requests that are
 * not allowed in: wrong or missing webhook tokens, wrong bearer tokens,
 * console forms without a session (or with a forged cookie), and sign-ins
 * with the wrong token. None may answer 5xx or log at error level: an
 * unauthenticated caller must not be able to raise an alarm or reach a bug.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Env } from "../../../src/shared/env.ts";
import { baseEnv, callWorker } from "../helpers/env.ts";
import { capturingLogs, checkProperty, hostileJson, mutated } from "../helpers/fuzz.ts";
import { ALL_CASES } from "../helpers/inbound-cases.ts";

const FILE = "test/worker/shared/fuzz-unauthenticated.test.ts";
const RUNS = 1_000;
const ORIGIN = "http://127.0.0.1:8787";
const ADMIN = "fuzz-admin-token-0123456789abcdef0123";
const env: Env = { ...baseEnv, ADMIN_TOKEN: ADMIN };

/** What a header may carry: printable ASCII (the Request constructor refuses the rest). */
const headerText = (maxLength: number) =>
  fc.string({ maxLength }).map((text) => text.replace(/[^\x20-\x7e]/g, "").trim());

const body = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }),
  hostileJson.map((value) => JSON.stringify(value) ?? ""),
  mutated(ALL_CASES.map((entry) => entry.payload)).map((value) => JSON.stringify(value) ?? ""),
  fc
    .dictionary(fc.string({ maxLength: 20 }), fc.string({ maxLength: 60 }))
    .map((fields) => new URLSearchParams(fields).toString()),
);

const contentType = fc.option(
  fc.constantFrom(
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain",
    "application/x-www-form-urlencoded; charset=utf-16",
  ),
  { nil: undefined },
);

/** Sends every request, then proves none was a 5xx and none logged an error. */
async function expectRefusedCalmly(test: string, requests: fc.Arbitrary<Request>) {
  const statuses: number[] = [];
  const { lines } = await capturingLogs(() =>
    checkProperty(
      fc.asyncProperty(requests, async (request) => {
        const response = await callWorker(request, env);
        await response.arrayBuffer();
        statuses.push(response.status);
        expect(response.status, `${request.method} ${request.url}`).toBeLessThan(500);
      }),
      { file: FILE, test, numRuns: RUNS },
    ),
  );
  expect(statuses.length).toBeGreaterThanOrEqual(RUNS);
  expect(lines.filter((line) => line.includes('"level":"error"'))).toEqual([]);
  return statuses;
}

describe("unauthenticated requests: no 5xx, no error-level log line", () => {
  it("POST /vero/webhook with a wrong, empty, repeated or missing token", async () => {
    const token = fc.oneof(
      fc.constant(""),
      fc.string({ maxLength: 80 }).map((value) => `?token=${encodeURIComponent(value)}`),
      fc.string({ maxLength: 40 }).map((value) => `?token=${encodeURIComponent(value)}&token=x`),
      fc.string({ maxLength: 40 }).map((value) => `?tok=${encodeURIComponent(value)}`),
    );
    const statuses = await expectRefusedCalmly(
      "POST /vero/webhook with a wrong, empty, repeated or missing token",
      fc.tuple(token, body, contentType).map(
        ([query, payload, type]) =>
          new Request(`${ORIGIN}/vero/webhook${query}`, {
            method: "POST",
            body: payload,
            headers: type ? { "content-type": type } : {},
          }),
      ),
    );
    expect(new Set(statuses)).toEqual(new Set([401]));
  });

  it("the JSON admin routes with a wrong, malformed or missing bearer token", async () => {
    const route = fc.constantFrom(
      ["GET", "/admin/dead-letters"],
      ["POST", "/admin/dead-letters/redrive?limit=1000"],
      ["GET", "/admin/dead-letters/some-id"],
      ["DELETE", "/admin/dead-letters/some-id"],
      ["POST", "/admin/dead-letters/some-id/redrive"],
      ["GET", "/admin/counters?since=2026-11-28T00:00:00Z"],
    );
    const authorization = fc.option(
      fc.oneof(
        headerText(80),
        headerText(80).map((value) => `Bearer ${value}`),
        headerText(80).map((value) => `Basic ${value}`),
        fc.constant(`Bearer ${ADMIN}x`),
      ),
      { nil: undefined },
    );
    const statuses = await expectRefusedCalmly(
      "the JSON admin routes with a wrong, malformed or missing bearer token",
      fc.tuple(route, authorization, body).map(
        ([[method, path], auth, payload]) =>
          new Request(`${ORIGIN}${path}`, {
            method,
            headers: auth === undefined ? {} : { authorization: auth },
            ...(method === "GET" ? {} : { body: payload }),
          }),
      ),
    );
    // Past 10 wrong tokens a minute from one client, the Bearer routes answer 429 instead (SIGN_IN_LIMITER).
    expect(statuses).toContain(401);
    for (const status of statuses) expect([401, 429]).toContain(status);
  });

  it("the console's sign-in form with the wrong token, any body, any origin", async () => {
    const origin = fc.oneof(fc.constant(ORIGIN), fc.constant("https://evil.example"), headerText(40));
    // Mostly a client of its own, so that the body is read past the rate limit; one client is limited.
    const client = fc.oneof({ weight: 9, arbitrary: fc.uuid() }, { weight: 1, arbitrary: fc.constant("203.0.113.1") });
    const statuses = await expectRefusedCalmly(
      "the console's sign-in form with the wrong token, any body, any origin",
      fc.tuple(body, contentType, origin, client).map(
        ([payload, type, from, ip]) =>
          new Request(`${ORIGIN}/admin/console/sign-in`, {
            method: "POST",
            body: payload,
            headers: { origin: from, "cf-connecting-ip": ip, ...(type ? { "content-type": type } : {}) },
          }),
      ),
    );
    // Wrong token, bad form, another origin, or too many attempts: never a session.
    for (const status of statuses) expect([400, 401, 403, 413, 429]).toContain(status);
  });

  it("the console's re-drive, delete and sign-out forms without a session or with a forged cookie", async () => {
    const path = fc.constantFrom(
      "/admin/console/redrive",
      "/admin/console/dead-letters/some-id/redrive",
      "/admin/console/dead-letters/some-id/delete",
      "/admin/console/sign-out",
    );
    const cookie = fc.option(
      fc.oneof(
        headerText(120).map((value) => `bridge_console=${encodeURIComponent(value)}`),
        fc.uuid().map((id) => `bridge_console=${id}.${Date.now() + 3_600_000}.forgedsignature%3D`),
      ),
      { nil: undefined },
    );
    const statuses = await expectRefusedCalmly(
      "the console's re-drive, delete and sign-out forms without a session or with a forged cookie",
      fc.tuple(path, cookie, body, contentType).map(
        ([to, jar, payload, type]) =>
          new Request(`${ORIGIN}${to}`, {
            method: "POST",
            body: payload,
            redirect: "manual",
            headers: {
              origin: ORIGIN,
              ...(jar ? { cookie: jar } : {}),
              ...(type ? { "content-type": type } : {}),
            },
          }),
      ),
    );
    // Sent to sign in (or, for sign-out, signed out): nothing acted on.
    for (const status of statuses) expect([303, 413]).toContain(status);
  });
});
