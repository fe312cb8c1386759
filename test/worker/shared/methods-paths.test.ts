/**
 * Methods and paths outside the contract: every known route refuses every
 * other method with a JSON 405 and an Allow header (HEAD and OPTIONS
 * included), and every unknown path is a JSON 404. A property then throws
 * arbitrary methods and paths at the Worker.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Env } from "../../../src/shared/env.ts";
import { basic, callWorker, expectJsonError, isolatedEnv, segment, vero } from "../helpers/env.ts";
import { capturingLogs, checkProperty } from "../helpers/fuzz.ts";

const FILE = "test/worker/shared/methods-paths.test.ts";
const ADMIN = "admin-token-for-methods-0123456789ab";
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/** Each route of the contract (and the admin routes), with the methods it serves. */
const ROUTES: [path: string, allowed: readonly string[]][] = [
  ["/health", ["GET", "HEAD"]],
  ["/vero/webhook", ["POST"]],
  ["/segment", ["POST"]],
  ...["batch", "import", "import/", "track", "identify", "group", "alias", "page", "screen"].map(
    (call) => [`/v1/${call}`, ["POST"]] as [string, string[]],
  ),
  ["/admin/dead-letters", ["GET", "HEAD"]],
  // GET and DELETE here address a letter whose id is "redrive" (the `:id` route).
  ["/admin/dead-letters/redrive", ["POST", "GET", "HEAD", "DELETE"]],
  ["/admin/dead-letters/some-id", ["GET", "HEAD", "DELETE"]],
  ["/admin/dead-letters/some-id/redrive", ["POST"]],
];

const UNKNOWN_PATHS = [
  "/",
  "/health/",
  "/vero",
  "/vero/",
  "/vero/webhook/",
  "/vero/webhooks",
  "/vero/webhook/extra",
  "/segment/",
  "/segment/extra",
  "/v1",
  "/v1/",
  "/v1/imports",
  "/v1/import/extra",
  "/v1/track/extra",
  // Each once served as a real call: the route's pattern was not anchored (a regression guard).
  "/v1/xtrack",
  "/v1/batchy",
  "/v1/trackx",
  "/V1/track",
  "/admin/",
  "/admin/dead-letters/some-id/extra",
  "/.env",
  "/segment%2F",
  "/v1%2Ftrack",
];

/** Admin routes check the bearer first; the others need no credential to be told the method or path is wrong. */
const request = (method: string, path: string) =>
  new Request(`http://bridge${path}`, {
    method,
    headers: path.startsWith("/admin") ? { Authorization: `Bearer ${ADMIN}` } : {},
  });

/** HEAD answers carry no body; their status and content type must still say it. */
async function expectJson(response: Response, status: number, method: string): Promise<void> {
  if (method === "HEAD") {
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toContain("application/json");
    expect(await response.text()).toBe("");
  } else await expectJsonError(response, status);
}

describe("methods a route does not serve", () => {
  for (const [path, allowed] of ROUTES) {
    const refused = METHODS.filter(
      (method) => !allowed.includes(method) && !(method === "HEAD" && allowed.includes("GET")),
    );
    it(`${path}: ${refused.join(", ")} are a JSON 405 with Allow: ${allowed.join(", ")}`, async () => {
      const { env } = await isolatedEnv({ ADMIN_TOKEN: ADMIN }, { ledger: true });
      for (const method of refused) {
        const response = await callWorker(request(method, path), env);
        expect(response.headers.get("Allow")?.split(", ").sort(), `${method} ${path}`).toEqual([...allowed].sort());
        await expectJson(response, 405, method);
      }
    });
  }
});

describe("paths outside the contract", () => {
  it("are a JSON 404 whatever the method, HEAD and OPTIONS included", async () => {
    const { env } = await isolatedEnv({ ADMIN_TOKEN: ADMIN }, { ledger: true });
    for (const path of UNKNOWN_PATHS) {
      for (const method of METHODS) await expectJson(await callWorker(request(method, path), env), 404, method);
    }
  });

  it("under /admin without the bearer token: a JSON 401, so that the routes there are not revealed", async () => {
    const { env } = await isolatedEnv({ ADMIN_TOKEN: ADMIN }, { ledger: true });
    for (const path of ["/admin/nothing-here", "/admin/dead-letters"]) {
      for (const method of ["GET", "OPTIONS"]) {
        const response = await callWorker(new Request(`http://bridge${path}`, { method }), env);
        await expectJsonError(response, 401);
      }
    }
  });
});

describe("arbitrary methods and paths", () => {
  const test = "never a 5xx, always JSON, and never a call upstream";
  it(test, async () => {
    const { env, writeKey, veroToken } = await isolatedEnv({ ADMIN_TOKEN: ADMIN }, { ledger: true });
    const segmentPart = fc.oneof(
      fc.constantFrom(
        "vero",
        "webhook",
        "segment",
        "v1",
        "track",
        "batch",
        "health",
        "admin",
        "dead-letters",
        "redrive",
      ),
      fc.constantFrom("", ".", "..", "%2F", "%00", "__proto__", "constructor", "jane@example.com"),
      fc.string({ maxLength: 8 }).map(encodeURIComponent),
    );
    const path = fc.array(segmentPart, { minLength: 1, maxLength: 4 }).map((parts) => `/${parts.join("/")}`);
    const method = fc.oneof(fc.constantFrom(...METHODS), fc.constantFrom("PROPFIND", "PURGE", "get", "Post"));
    const auth = fc.constantFrom("none", "basic", "bearer");

    const property = fc.asyncProperty(method, path, auth, async (verb, target, credential) => {
      const headers: Record<string, string> =
        credential === "basic"
          ? { Authorization: basic("dev-segment-shared-secret-for-local-use") }
          : credential === "bearer"
            ? { Authorization: `Bearer ${ADMIN}` }
            : {};
      const body = ["GET", "HEAD"].includes(verb.toUpperCase()) ? undefined : "{}";
      const response = await callWorker(
        new Request(`http://bridge${target}?token=dev-vero-webhook-token-for-local-use`, {
          method: verb,
          headers,
          body,
        }),
        env as Env,
      );
      const text = await response.text();
      expect(response.status, `${verb} ${target}: ${text}`).toBeLessThan(500);
      expect(response.headers.get("content-type"), `${verb} ${target}`).toContain("application/json");
      if (text !== "") expect(() => JSON.parse(text)).not.toThrow();
    });
    await capturingLogs(() => checkProperty(property, { file: FILE, test, numRuns: 500 }));
    // `{}` is never a deliverable event or webhook, so nothing may have gone upstream.
    expect(await segment.calls(writeKey)).toEqual([]);
    expect(await vero.calls(veroToken)).toEqual([]);
  }, 60_000);
});
