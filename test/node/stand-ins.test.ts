/**
 * The stand-ins must refuse what the real services refuse, or the bridge's
 * tests would pass against a kinder world than production.
 */
import { request } from "undici";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { StandInClient } from "../../dev/stand-ins/client.ts";

const segmentOrigin = inject("segmentOrigin");
const veroOrigin = inject("veroOrigin");
const segment = new StandInClient(segmentOrigin);
const vero = new StandInClient(veroOrigin);

/** Polls `condition` every 20 ms for up to 5 s: whether it came true. */
async function waitUntil(condition: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

const basic = (key: string) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;

async function post(url: string, body: unknown, headers: Record<string, string> = {}, method = "POST") {
  const response = await request(url, {
    method: method as "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return {
    status: response.statusCode,
    headers: response.headers,
    body: (await response.body.json()) as Record<string, unknown>,
  };
}

describe("Segment stand-in", () => {
  let key: string;
  const track = { type: "track", userId: "u-1", event: "Signed Up" };
  beforeAll(async () => {
    key = await segment.tenant();
  });

  it("accepts a valid track and records it", async () => {
    const own = await segment.tenant();
    const response = await post(`${segmentOrigin}/v1/track`, track, { authorization: basic(own) });
    expect(response).toMatchObject({ status: 200, body: { success: true } });
    expect(await segment.accepted(own)).toMatchObject([
      { method: "POST", path: "/v1/track", status: 200, body: track },
    ]);
  });

  it("refuses a request without a write key (401)", async () => {
    expect((await post(`${segmentOrigin}/v1/track`, track)).status).toBe(401);
  });

  it("refuses an unknown write key (401)", async () => {
    expect((await post(`${segmentOrigin}/v1/track`, track, { authorization: basic("who") })).status).toBe(401);
  });

  it("accepts the write key in the body", async () => {
    expect((await post(`${segmentOrigin}/v1/track`, { ...track, writeKey: key })).status).toBe(200);
  });

  it("refuses a body that is not JSON (400)", async () => {
    expect((await post(`${segmentOrigin}/v1/track`, "{nope", { authorization: basic(key) })).status).toBe(400);
  });

  it("refuses a message with neither userId nor anonymousId (400)", async () => {
    const response = await post(
      `${segmentOrigin}/v1/track`,
      { type: "track", event: "x" },
      { authorization: basic(key) },
    );
    expect(response).toMatchObject({ status: 400, body: { message: "message needs a userId or an anonymousId" } });
  });

  it("refuses a batch in which one message lacks an identity (400)", async () => {
    const response = await post(
      `${segmentOrigin}/v1/batch`,
      { batch: [track, { type: "identify", traits: {} }] },
      { authorization: basic(key) },
    );
    expect(response).toMatchObject({ status: 400, body: { message: "batch[1] needs a userId or an anonymousId" } });
  });

  it("refuses an event over 32 KB (400)", async () => {
    const big = { ...track, properties: { pad: "x".repeat(33 * 1024) } };
    const response = await post(`${segmentOrigin}/v1/track`, big, { authorization: basic(key) });
    expect(response).toMatchObject({ status: 400, body: { message: "message is over 32 KB" } });
  });

  it("refuses a batch request over 500 KB even when each event is small (400)", async () => {
    const batch = Array.from({ length: 20 }, () => ({ ...track, properties: { pad: "x".repeat(30 * 1024) } }));
    const response = await post(`${segmentOrigin}/v1/batch`, { batch }, { authorization: basic(key) });
    expect(response).toMatchObject({ status: 400, body: { message: "batch request is over 500 KB" } });
  });

  it("answers 404 on an unknown endpoint and 405 on a wrong method", async () => {
    expect((await post(`${segmentOrigin}/v1/nope`, track, { authorization: basic(key) })).status).toBe(404);
    expect((await post(`${segmentOrigin}/v1/track`, track, { authorization: basic(key) }, "PUT")).status).toBe(405);
  });
});

describe("Vero stand-in", () => {
  let token: string;
  const api = `${veroOrigin}/api/v2`;
  beforeAll(async () => {
    token = await vero.tenant();
  });

  it("accepts a valid /users/track with auth_token and records it", async () => {
    const own = await vero.tenant();
    const body = { auth_token: own, id: "u-1", email: "a@example.com", data: { plan: "pro" } };
    expect(await post(`${api}/users/track`, body)).toMatchObject({
      status: 200,
      body: { status: 200, message: "Success." },
    });
    expect(await vero.accepted(own)).toMatchObject([{ method: "POST", path: "/api/v2/users/track", body }]);
  });

  it("accepts tracking_api_key in place of auth_token", async () => {
    const key = await vero.tenant();
    expect((await post(`${api}/users/track`, { tracking_api_key: key, id: "u-1" })).status).toBe(200);
  });

  it("refuses a missing or unknown auth token (401)", async () => {
    expect((await post(`${api}/users/track`, { id: "u-1" })).status).toBe(401);
    expect((await post(`${api}/users/track`, { auth_token: "who", id: "u-1" })).status).toBe(401);
  });

  it("refuses a wrong method (405) and an unknown endpoint (404)", async () => {
    expect((await post(`${api}/users/track`, { auth_token: token, id: "u" }, {}, "PUT")).status).toBe(405);
    expect((await post(`${api}/users/edit`, { auth_token: token, id: "u", changes: {} }, {}, "POST")).status).toBe(405);
    expect((await post(`${api}/users/nope`, { auth_token: token, id: "u" })).status).toBe(404);
  });

  const requiredFields: [string, string, Record<string, unknown>, string][] = [
    ["POST", "/users/track", {}, "id or email is required"],
    ["PUT", "/users/edit", { id: "u" }, "changes must be an object"],
    ["PUT", "/users/tags/edit", { id: "u" }, "add or remove is required"],
    ["PUT", "/users/tags/edit", { id: "u", add: "vip" }, "add and remove must be arrays of strings"],
    ["POST", "/users/unsubscribe", {}, "id or email is required"],
    ["POST", "/users/resubscribe", {}, "id or email is required"],
    ["POST", "/users/delete", {}, "id or email is required"],
    ["PUT", "/users/reidentify", { id: "u" }, "id and new_id are required"],
    ["POST", "/events/track", { event_name: "x" }, "identity is required"],
    ["POST", "/events/track", { identity: {}, event_name: "x" }, "identity: id or email is required"],
    ["POST", "/events/track", { identity: { id: "u" } }, "event_name is required"],
  ];
  for (const [method, path, body, message] of requiredFields) {
    it(`refuses ${method} ${path} without its required fields: ${message} (400)`, async () => {
      const response = await post(`${api}${path}`, { auth_token: token, ...body }, {}, method);
      expect(response).toMatchObject({ status: 400, body: { status: 400, message } });
    });
  }

  it("refuses ids, emails and event names over 255 characters (400)", async () => {
    const long = "x".repeat(256);
    expect((await post(`${api}/users/track`, { auth_token: token, id: long })).body.message).toBe(
      "id is longer than 255 characters",
    );
    expect((await post(`${api}/users/track`, { auth_token: token, email: `${long}@example.com` })).status).toBe(400);
    expect(
      (await post(`${api}/events/track`, { auth_token: token, identity: { id: "u" }, event_name: long })).status,
    ).toBe(400);
    expect((await post(`${api}/users/track`, { auth_token: token, id: "x".repeat(255) })).status).toBe(200);
  });
});

describe("failure switches", () => {
  it("fails the next N calls with the chosen status, then recovers", async () => {
    const key = await segment.tenant();
    await segment.fail(key, { status: 500, times: 2 });
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      statuses.push(
        (
          await post(
            `${segmentOrigin}/v1/track`,
            { type: "track", userId: "u", event: "e" },
            { authorization: basic(key) },
          )
        ).status,
      );
    }
    expect(statuses).toEqual([500, 500, 200]);
    expect((await segment.accepted(key)).length).toBe(1);
  });

  it("answers 429 with Retry-After", async () => {
    const key = await vero.tenant();
    await vero.fail(key, { status: 429, retryAfter: 7 });
    const response = await post(`${veroOrigin}/api/v2/users/track`, { auth_token: key, id: "u" });
    expect(response.status).toBe(429);
    expect(response.headers["retry-after"]).toBe("7");
    await vero.heal(key);
    expect((await post(`${veroOrigin}/api/v2/users/track`, { auth_token: key, id: "u" })).status).toBe(200);
  });

  it("fails a seeded fraction of calls with `rate`", async () => {
    const key = await segment.tenant();
    await segment.fail(key, { status: 503, rate: 0.3, seed: 42 });
    let failures = 0;
    for (let i = 0; i < 100; i++) {
      const { status } = await post(
        `${segmentOrigin}/v1/track`,
        { type: "track", userId: "u", event: "e" },
        { authorization: basic(key) },
      );
      if (status === 503) failures++;
    }
    expect(failures).toBeGreaterThan(15);
    expect(failures).toBeLessThan(45);
  });

  it("fails a seeded fraction with several statuses, and lets the first `after` calls through", async () => {
    const key = await segment.tenant();
    await segment.fail(key, { statuses: [500, 429], rate: 0.3, seed: 7, after: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++) {
      const { status } = await post(
        `${segmentOrigin}/v1/track`,
        { type: "track", userId: "u", event: "e" },
        { authorization: basic(key) },
      );
      statuses.push(status);
    }
    expect(statuses.slice(0, 2)).toEqual([200, 200]);
    const failures = statuses.filter((status) => status !== 200);
    expect(failures.length).toBeGreaterThan(15);
    expect(failures.length).toBeLessThan(45);
    expect(new Set(failures)).toEqual(new Set([500, 429]));
  });

  it("holds its answer back by `delayMs`, so a client timeout trips", async () => {
    const key = await vero.tenant();
    await vero.fail(key, { delayMs: 2000 });
    const attempt = request(`${veroOrigin}/api/v2/users/track`, {
      method: "POST",
      body: JSON.stringify({ auth_token: key, id: "u" }),
      signal: AbortSignal.timeout(200),
    });
    await expect(attempt).rejects.toThrow();
  });

  it("holds every call back by `delayMs` alone and still answers it: a round trip, not a failure", async () => {
    const key = await vero.tenant();
    await vero.fail(key, { delayMs: 300 });
    const answered = post(`${veroOrigin}/api/v2/users/track`, { auth_token: key, id: "u" });
    const held = await waitUntil(async () => (await vero.inFlight(key)).now === 1);
    expect(held).toBe(true);
    expect((await answered).status).toBe(200);
    expect(await vero.accepted(key)).toHaveLength(1);
    expect(await vero.inFlight(key)).toEqual({ now: 0, max: 1 });
  });

  it("records the most calls of a tenant in flight at once, apart from other tenants, until its calls are cleared", async () => {
    const [busy, idle] = await Promise.all([vero.tenant(), vero.tenant()]);
    await vero.fail(busy, { delayMs: 300 });
    const calls = Array.from({ length: 4 }, (_, i) =>
      post(`${veroOrigin}/api/v2/users/track`, { auth_token: busy, id: `u-${i}` }),
    );
    expect(await waitUntil(async () => (await vero.inFlight(busy)).now === 4)).toBe(true);
    await Promise.all(calls);
    await post(`${veroOrigin}/api/v2/users/track`, { auth_token: busy, id: "after" });
    expect(await vero.inFlight(busy)).toEqual({ now: 0, max: 4 });
    expect(await vero.inFlight(idle)).toEqual({ now: 0, max: 0 });
    await vero.clear(busy);
    expect(await vero.inFlight(busy)).toEqual({ now: 0, max: 0 });
  });

  it("records calls with unknown credentials apart from every tenant", async () => {
    await post(`${veroOrigin}/api/v2/users/track`, { auth_token: "stranger", id: "u" });
    const unknown = await vero.unknownCalls();
    expect(unknown.some((call) => (call.body as { auth_token?: string }).auth_token === "stranger")).toBe(true);
  });
});
