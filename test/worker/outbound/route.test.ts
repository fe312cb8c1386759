/** Segment events through the routes to the Vero stand-in over real HTTP: what Vero receives, what Segment is told. */
import { describe, expect, it, vi } from "vitest";
import { mailboxName } from "../../../src/outbound/mailbox.ts";
import { MAILBOXES_PER_INVOCATION, mailboxConfigFor } from "../../../src/outbound/mailboxes.ts";
import type { Env } from "../../../src/shared/env.ts";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";
import alias from "../../fixtures/segment/alias.json";
import group from "../../fixtures/segment/group.json";
import identify from "../../fixtures/segment/identify.json";
import identifyWithTags from "../../fixtures/segment/identify_with_tags.json";
import track from "../../fixtures/segment/track.json";
import unsubscribe from "../../fixtures/segment/unsubscribe.json";
import { basic, callWorker, expectJsonError, isolatedEnv, postApi, vero } from "../helpers/env.ts";
import { deadLetterFor } from "../helpers/queue.ts";

/** The name the bridge gives `user`'s mailbox under `env`'s Vero account. */
function mailboxNameFor(env: Env, user: string): string {
  const ready = mailboxConfigFor(env);
  if (!ready.ok) throw new Error(ready.reason);
  return mailboxName(ready.config.account, user);
}

const secret = "dev-segment-shared-secret-for-local-use";

/** POST /segment as Segment's Webhooks destination does: X-Signature over the raw body. */
async function webhook(env: Env, body: unknown, raw = JSON.stringify(body)): Promise<Response> {
  const signature = hmacSha1Hex(secret, raw);
  return callWorker(
    new Request("http://bridge/segment", { method: "POST", body: raw, headers: { "X-Signature": signature } }),
    env,
  );
}

/** One track for each of `count` users, its messageId `prefix` and the user's number. */
const tracksToUsers = (count: number, prefix: string) =>
  Array.from({ length: count }, (_, n) => ({ type: "track", messageId: `${prefix}${n}`, userId: `u${n}`, event: "e" }));

/**
 * `env`'s MAILBOX, counting the objects the route takes; past `limit` it
 * throws as production does past an invocation's subrequests.
 */
function countingMailbox(env: Env, limit = Number.POSITIVE_INFINITY) {
  const real = env.MAILBOX as NonNullable<Env["MAILBOX"]>;
  let calls = 0;
  const binding = {
    idFromName: (name: string) => real.idFromName(name),
    get: (id: DurableObjectId) => {
      if (++calls > limit) throw new Error("Too many subrequests.");
      return real.get(id);
    },
  } as unknown as NonNullable<Env["MAILBOX"]>;
  return { binding, calls: () => calls };
}

/** What the stand-in received, as method, path (under /api/v2) and body. */
async function received(key: string) {
  return (await vero.calls(key)).map((call) => ({
    method: call.method,
    path: call.path.replace(/^\/api\/v2/, ""),
    body: call.body,
  }));
}

/** Taken by the users' mailboxes (202); callWorker waits for them to deliver. */
async function expectDelivered(response: Response, status = 202) {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  return JSON.parse(text) as { ok: true; results: { messageId: string | null; outcome: string; error?: string }[] };
}

/** One call as the Vero stand-in received it (see `received`). */
interface VeroCall {
  method: string;
  path: string;
  body: Record<string, unknown>;
}

/** One row of the contract: the event, the route it arrives by, and the exact calls Vero receives for it. */
interface ContractRow {
  /** `/segment` signed as Segment's Webhooks destination signs (202), or `/v1/<call>` with Basic as Segment's libraries send (200). */
  via: "/segment" | `/v1/${string}`;
  event: Record<string, unknown>;
  /** The route's `results`, for the rows that pin them. */
  results?: unknown[];
  /** The calls, in order, under the tenant's `auth_token`. */
  calls: (authToken: string) => VeroCall[];
}

const CONTRACT: [name: string, row: ContractRow][] = [
  [
    "identify: POST /users/track with id, email, traits and userAgent, and the auth_token",
    {
      via: "/segment",
      event: identify,
      results: [{ messageId: "ex-identify-1", index: 0, outcome: "queued" }],
      calls: (authToken) => [
        {
          method: "POST",
          path: "/users/track",
          body: {
            auth_token: authToken,
            id: "324LKJF",
            email: "jane@example.com",
            data: {
              email: "jane@example.com",
              name: "Jane",
              plan: "pro",
              order_completed_last_30days: true,
              id: "324LKJF",
              userAgent: "Mozilla/5.0",
            },
          },
        },
      ],
    },
  ],
  [
    "identify whose userId is an email: that email is the email",
    {
      via: "/v1/identify",
      event: { userId: "jane@example.com", traits: { plan: "pro" } },
      calls: (authToken) => [
        {
          method: "POST",
          path: "/users/track",
          body: {
            auth_token: authToken,
            id: "jane@example.com",
            email: "jane@example.com",
            data: { plan: "pro", id: "jane@example.com" },
          },
        },
      ],
    },
  ],
  [
    "track: POST /events/track with identity, data, created_at and source",
    {
      via: "/segment",
      event: track,
      calls: (authToken) => [
        {
          method: "POST",
          path: "/events/track",
          body: {
            auth_token: authToken,
            identity: { id: "324LKJF", email: "jane@example.com" },
            event_name: "Viewed product",
            data: { product_name: "Red T-shirt", product_url: "http://www.yourdomain.com/products/red-t-shirt" },
            extras: { created_at: 1717044391, source: "segment" },
          },
        },
      ],
    },
  ],
  [
    "track with properties.email but no context.traits.email: the identity has no email, the data keeps it",
    {
      via: "/segment",
      event: {
        type: "track",
        messageId: "m-1",
        userId: "u-1",
        event: "Signed Up",
        timestamp: "2014-01-01T00:00:00.000Z",
        properties: { email: "jane@example.com" },
      },
      calls: (authToken) => [
        {
          method: "POST",
          path: "/events/track",
          body: {
            auth_token: authToken,
            identity: { id: "u-1" },
            event_name: "Signed Up",
            data: { email: "jane@example.com" },
            extras: { created_at: 1388534400, source: "segment" },
          },
        },
      ],
    },
  ],
  [
    "Unsubscribe track: POST /users/unsubscribe for properties.id",
    {
      via: "/segment",
      event: unsubscribe,
      calls: (authToken) => [
        {
          method: "POST",
          path: "/users/unsubscribe",
          body: { auth_token: authToken, id: "12345", extras: { created_at: 1717044391, source: "segment" } },
        },
      ],
    },
  ],
  [
    "Resubscribe track: POST /users/resubscribe for the userId",
    {
      via: "/v1/track",
      event: { userId: "u-1", event: "resubscribe", timestamp: "2014-01-01T00:00:00.000Z" },
      calls: (authToken) => [
        {
          method: "POST",
          path: "/users/resubscribe",
          body: { auth_token: authToken, id: "u-1", extras: { created_at: 1388534400, source: "segment" } },
        },
      ],
    },
  ],
  [
    "page: a viewed_page event with the properties as data",
    {
      via: "/v1/page",
      event: {
        userId: "u-1",
        name: "Pricing",
        timestamp: "2014-01-01T00:00:00.000Z",
        properties: { url: "https://example.com/pricing" },
      },
      calls: (authToken) => [
        {
          method: "POST",
          path: "/events/track",
          body: {
            auth_token: authToken,
            identity: { id: "u-1" },
            event_name: "viewed_page",
            data: { url: "https://example.com/pricing" },
            extras: { created_at: 1388534400, source: "segment" },
          },
        },
      ],
    },
  ],
  [
    "screen: a viewed_screen event with the properties as data",
    {
      via: "/v1/screen",
      event: {
        userId: "u-1",
        name: "Home",
        timestamp: "2014-01-01T00:00:00.000Z",
        properties: { variation: "blue" },
      },
      calls: (authToken) => [
        {
          method: "POST",
          path: "/events/track",
          body: {
            auth_token: authToken,
            identity: { id: "u-1" },
            event_name: "viewed_screen",
            data: { variation: "blue" },
            extras: { created_at: 1388534400, source: "segment" },
          },
        },
      ],
    },
  ],
  [
    "group: PUT /users/edit with the traits as the user's group",
    {
      via: "/segment",
      event: group,
      calls: (authToken) => [
        {
          method: "PUT",
          path: "/users/edit",
          body: { auth_token: authToken, id: "324LKJF", changes: { group: { name: "Acme", plan: "enterprise" } } },
        },
      ],
    },
  ],
  [
    "alias: PUT /users/reidentify from previousId to userId",
    {
      via: "/segment",
      event: alias,
      calls: (authToken) => [
        {
          method: "PUT",
          path: "/users/reidentify",
          body: { auth_token: authToken, id: "jane@example.com", new_id: "8765309" },
        },
      ],
    },
  ],
  [
    "delete: POST /users/delete for the userId",
    {
      via: "/segment",
      event: { type: "delete", messageId: "del-1", userId: "u-1" },
      calls: (authToken) => [{ method: "POST", path: "/users/delete", body: { auth_token: authToken, id: "u-1" } }],
    },
  ],
];

describe("each contract row reaches Vero as the exact call", () => {
  it.each(CONTRACT)("%s", async (_name, { via, event, results, calls }) => {
    const { env, veroToken } = await isolatedEnv();
    const body =
      via === "/segment"
        ? await expectDelivered(await webhook(env, event))
        : await expectDelivered(await postApi(env, via.slice("/v1/".length), event), 200);
    if (results) expect(body.results).toEqual(results);
    expect(await received(veroToken)).toEqual(calls(veroToken));
  });

  it("sends VERO_TRACKING_API_KEY as tracking_api_key", async () => {
    const key = await vero.tenant();
    const { env } = await isolatedEnv({ VERO_TRACKING_API_KEY: key });
    await expectDelivered(await webhook(env, alias));
    expect(await received(key)).toEqual([
      {
        method: "PUT",
        path: "/users/reidentify",
        body: { tracking_api_key: key, id: "jane@example.com", new_id: "8765309" },
      },
    ]);
  });
});

describe("tags", () => {
  it("identify with { id, action, values }: the identify, then the tags edit for tags.id", async () => {
    const { env, veroToken } = await isolatedEnv();
    await expectDelivered(await webhook(env, identifyWithTags));
    expect(await received(veroToken)).toEqual([
      {
        method: "POST",
        path: "/users/track",
        body: {
          auth_token: veroToken,
          id: "324LKJF",
          email: "jane@example.com",
          data: { email: "jane@example.com", id: "324LKJF" },
        },
      },
      {
        method: "PUT",
        path: "/users/tags/edit",
        body: { auth_token: veroToken, id: "235FAG", add: ["warriors", "giants", "niners"] },
      },
    ]);
  });

  it("track with { add, remove } and no id: the tags edit goes to the userId", async () => {
    const { env, veroToken } = await isolatedEnv();
    await expectDelivered(
      await webhook(env, { ...track, integrations: { Vero: { tags: { add: ["vip"], remove: ["trial"] } } } }),
    );
    const calls = await received(veroToken);
    expect(calls.map((call) => `${call.method} ${call.path}`)).toEqual(["POST /events/track", "PUT /users/tags/edit"]);
    expect(calls[1]?.body).toEqual({ auth_token: veroToken, id: "324LKJF", add: ["vip"], remove: ["trial"] });
  });

  it("malformed tags: 400 naming the problem, and no Vero call at all", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await webhook(env, {
      ...identify,
      integrations: { Vero: { tags: { action: "add", values: "warriors" } } },
    });
    expect((await expectJsonError(response, 400)).error.message).toBe(
      "integrations.Vero.tags.values must be an array of strings",
    );
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("sends no tags edit when the main call fails", async () => {
    // A minute before the mailbox's retry: the test reads what Vero received before it.
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "60" });
    await vero.fail(veroToken, { status: 500 });
    expect((await webhook(env, identifyWithTags)).status).toBe(202);
    expect((await received(veroToken)).map((call) => call.path)).toEqual(["/users/track"]);
  });
});

describe("invalid events", () => {
  it("an event with neither userId nor email: 400 naming it, nothing sent", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await webhook(env, { type: "track", messageId: "m-1", anonymousId: "a-1", event: "x" });
    const error = await expectJsonError(response, 400);
    expect(error.error.message).toBe("no userId or email");
    expect(error.error.details).toEqual({
      results: [{ messageId: "m-1", index: 0, outcome: "invalid", error: "no userId or email" }],
    });
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("a body that is not JSON: 400", async () => {
    const { env } = await isolatedEnv();
    expect((await expectJsonError(await webhook(env, null, "{not json"), 400)).error.message).toBe(
      "the body is not valid JSON",
    );
  });
});

describe("authentication", () => {
  const refused: [name: string, headers: Record<string, string>][] = [
    ["a bad signature: 401 and nothing sent", { "X-Signature": hmacSha1Hex("not the secret", JSON.stringify(track)) }],
    ["no signature and no Basic: 401 and nothing sent", {}],
  ];
  it.each(refused)("%s", async (_name, headers) => {
    const { env, veroToken } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/segment", { method: "POST", body: JSON.stringify(track), headers }),
      env,
    );
    await expectJsonError(response, 401);
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("Basic with the shared secret on /segment delivers", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/segment", {
        method: "POST",
        body: JSON.stringify(alias),
        headers: { Authorization: basic(secret) },
      }),
      env,
    );
    await expectDelivered(response);
    expect(await vero.accepted(veroToken)).toHaveLength(1);
  });
});

describe("batches", () => {
  const invalidEvent = { type: "track", messageId: "bad-1", event: "No one" };

  it("a JSON array with Basic: the valid events delivered, the invalid one reported", async () => {
    const { env, veroToken } = await isolatedEnv();
    const events = [track, invalidEvent, alias];
    const response = await callWorker(
      new Request("http://bridge/segment", {
        method: "POST",
        body: JSON.stringify(events),
        headers: { Authorization: basic(secret) },
      }),
      env,
    );
    const body = await expectDelivered(response);
    expect(body.results).toEqual([
      { messageId: "ex-track-1", index: 0, outcome: "queued" },
      { messageId: "bad-1", index: 1, outcome: "invalid", error: "no userId or email" },
      { messageId: "ex-alias-1", index: 2, outcome: "queued" },
    ]);
    // Two users, two mailboxes side by side: each call once, in no order between them.
    expect((await received(veroToken)).map((call) => call.path).sort()).toEqual(["/events/track", "/users/reidentify"]);
  });

  it("{ batch } on /v1/batch: the valid events delivered in order, the invalid one reported", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = await expectDelivered(await postApi(env, "batch", { batch: [identify, invalidEvent, group] }), 200);
    expect(body.results.map((result) => [result.messageId, result.outcome])).toEqual([
      ["ex-identify-1", "queued"],
      ["bad-1", "invalid"],
      ["ex-group-1", "queued"],
    ]);
    expect((await received(veroToken)).map((call) => call.path)).toEqual(["/users/track", "/users/edit"]);
  });

  it("/segment with nothing deliverable: 400 listing each event (Segment drops the request)", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await webhook(env, [invalidEvent, { ...invalidEvent, messageId: "bad-2" }]);
    const error = await expectJsonError(response, 400);
    expect(error.error.message).toMatch(/none of the 2 events is deliverable/);
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("/v1/batch with nothing deliverable: 200 { success: true } listing each event refused, as Segment's API answers", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await postApi(env, "batch", { batch: [invalidEvent, { ...invalidEvent, messageId: "bad-2" }] });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      success: true,
      ok: true,
      results: [
        { messageId: "bad-1", index: 0, outcome: "invalid", error: "no userId or email" },
        { messageId: "bad-2", index: 1, outcome: "invalid", error: "no userId or email" },
      ],
    });
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("/segment over 4,000 events: 400, nothing sent", async () => {
    const { env, veroToken } = await isolatedEnv();
    const response = await webhook(env, { batch: Array.from({ length: 4001 }, () => alias) });
    expect((await expectJsonError(response, 400)).error.message).toMatch(/at most 4000/);
    expect(await vero.calls(veroToken)).toEqual([]);
  });
});

describe("the loop guard", () => {
  it("acknowledges an event that came from this bridge and sends nothing", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = await expectDelivered(
      await webhook(env, {
        ...track,
        context: { integration: { name: "vero-segment-bridge", version: "0.1.0" } },
        integrations: { Vero: false },
      }),
      200,
    );
    expect(body.results[0]).toMatchObject({ messageId: "ex-track-1", outcome: "skipped" });
    expect(await vero.calls(veroToken)).toEqual([]);
  });
});

describe("Vero failures are the user's mailbox's, not the request's", () => {
  it("Vero answering 500: 202, the mailbox holds the event and retries it", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "1" });
    await vero.fail(veroToken, { status: 500, times: 1 });
    const response = await webhook(env, track);
    expect(response.status, await response.text()).toBe(202);
    const calls = await vero.waitFor(veroToken, (all) => all.length === 2);
    expect(calls.map((call) => call.status)).toEqual([500, 200]);
  });

  it("Vero refusing the event: 202, and the mailbox keeps it as a dead letter with Vero's message", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    await vero.fail(veroToken, { status: 422, times: 1 });
    const event = { ...track, messageId: `refused-${veroToken}` };
    expect((await webhook(env, event)).status).toBe(202);
    expect(await vero.accepted(veroToken)).toEqual([]);
    // The mailbox moves its letter to D1 on its next wake.
    await vi.waitFor(async () =>
      expect(await deadLetterFor(env.LEDGER as D1Database, event.messageId)).toMatchObject({
        permanent: true,
        reason: expect.stringMatching(/^Vero answered 422 to POST \/events\/track: /),
      }),
    );
  });

  it("what Vero would refuse for its length is refused before the call, naming the event's field", async () => {
    const { env, veroToken } = await isolatedEnv();
    const error = await expectJsonError(await webhook(env, { ...track, event: "x".repeat(300) }), 400);
    expect(error.error.code).toBe("invalid_event");
    expect(error.error.message).toBe("event is longer than 255 characters (Vero's limit)");
    expect(await vero.calls(veroToken)).toEqual([]);
  });
});

describe("when the mailboxes cannot take the events (no queue bound)", () => {
  it("a mailbox that fails: 503 mailbox_unavailable, retryable, and the other users' events are taken", async () => {
    const { env, veroToken } = await isolatedEnv();
    const real = env.MAILBOX as NonNullable<Env["MAILBOX"]>;
    const broken = mailboxNameFor(env, "broken-user");
    // A namespace whose calls fail for one user, as an overloaded object or a storage error would.
    const failing = {
      idFromName: (name: string) => real.idFromName(name),
      get: (id: DurableObjectId) =>
        id.equals(real.idFromName(broken))
          ? { accept: () => Promise.reject(new Error("Durable Object storage operation exceeded timeout")) }
          : real.get(id),
    } as unknown as NonNullable<Env["MAILBOX"]>;
    const response = await postApi({ ...env, MAILBOX: failing }, "batch", {
      batch: [
        { ...track, messageId: "to-broken", userId: "broken-user" },
        { ...track, messageId: "to-fine", userId: "fine-user" },
      ],
    });
    const error = await expectJsonError(response, 503);
    expect(error.error.code).toBe("mailbox_unavailable");
    expect(error.error.details).toMatchObject({
      results: [
        { messageId: "to-broken", outcome: "failed", retryable: true, error: expect.stringMatching(/storage/) },
        { messageId: "to-fine", outcome: "queued" },
      ],
    });
    await vero.waitFor(veroToken, (calls) => calls.length === 1);
  });

  it("no MAILBOX bound: 503 not_configured, naming it", async () => {
    const { env } = await isolatedEnv({ MAILBOX: undefined });
    const error = await expectJsonError(await webhook(env, track), 503);
    expect(error.error.message).toMatch(/MAILBOX/);
  });

  it(`more users in one request than an invocation may call (${MAILBOXES_PER_INVOCATION}): 413 before any mailbox is called, against a double enforcing the 1,000 subrequests to Cloudflare services`, async () => {
    const { env, veroToken } = await isolatedEnv();
    const mailboxes = countingMailbox(env, 1_000);
    const users = MAILBOXES_PER_INVOCATION + 1;
    const batch = tracksToUsers(users, "m");
    const error = await expectJsonError(await postApi({ ...env, MAILBOX: mailboxes.binding }, "batch", { batch }), 413);
    expect(error.error).toMatchObject({ code: "too_many_users", details: { users, limit: MAILBOXES_PER_INVOCATION } });
    expect(mailboxes.calls()).toBe(0);
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it(`more users in one request than an invocation may call, VERO_OVERFLOW_QUEUE bound as wrangler.toml ships: the whole request is enqueued (a recording Queue double) and answered as accepted, before any mailbox is called`, async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const sent: { body: { messageId: string; user: string } }[][] = [];
    const overflow = {
      sendBatch: async (messages: { body: { messageId: string; user: string } }[]) => {
        sent.push(messages);
      },
    } as unknown as Queue;
    const mailboxes = countingMailbox(env);
    const batch = tracksToUsers(MAILBOXES_PER_INVOCATION + 1, "over-");
    const response = await postApi({ ...env, MAILBOX: mailboxes.binding, VERO_OVERFLOW_QUEUE: overflow }, "batch", {
      batch,
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { results: { messageId: string; outcome: string }[] };
    expect(new Set(body.results.map((result) => result.outcome))).toEqual(new Set(["queued"]));
    const queued = sent.flat().map((message) => message.body.messageId);
    expect(queued).toEqual(batch.map((event) => event.messageId));
    expect(mailboxes.calls()).toBe(0);
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("more users than one hand-over, and the overflow queue refuses the events: 503 queue_unavailable, retryable, none called", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const refusing = {
      sendBatch: async () => {
        throw new Error("Queue send failed: internal error");
      },
    } as unknown as Queue;
    const batch = tracksToUsers(MAILBOXES_PER_INVOCATION + 1, "refused-");
    const response = await postApi({ ...env, VERO_OVERFLOW_QUEUE: refusing }, "batch", { batch });
    const error = await expectJsonError(response, 503);
    expect(error.error.code).toBe("queue_unavailable");
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("a request that fits one hand-over goes to the mailboxes even with VERO_OVERFLOW_QUEUE bound", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    let sent = 0;
    const overflow = {
      sendBatch: async () => {
        sent++;
      },
      send: async () => {
        sent++;
      },
    } as unknown as Queue;
    const response = await postApi({ ...env, VERO_OVERFLOW_QUEUE: overflow }, "batch", {
      batch: [{ type: "track", messageId: "fits-1", userId: "u-fits", event: "e" }],
    });
    expect(response.status).toBe(200);
    expect(sent).toBe(0);
    const [call] = await vero.waitFor(veroToken, (all) => all.length === 1);
    expect(call?.path).toBe("/api/v2/events/track");
  });
});
