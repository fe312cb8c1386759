/**
 * POST /vero/webhook end to end: the Worker's fetch handler, the real
 * analytics-node client, real HTTP to the Segment stand-in. Each test has
 * its own write key (isolatedEnv), so what the stand-in recorded is this
 * test's alone.
 */
import { describe, expect, it } from "vitest";
import { segmentMessages } from "../../../dev/stand-ins/client.ts";
import clicked from "../../fixtures/vero/clicked.json";
import userCreated from "../../fixtures/vero/user_created.json";
import { callWorker, expectJsonError, isolatedEnv, segment } from "../helpers/env.ts";
import { ALL_CASES, MESSAGE_ID } from "../helpers/inbound-cases.ts";

const TOKEN = "dev-vero-webhook-token-for-local-use";
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function postWebhook(
  env: Awaited<ReturnType<typeof isolatedEnv>>["env"],
  body: string,
  { token = TOKEN, headers = {} }: { token?: string | null; headers?: Record<string, string> } = {},
) {
  const url = token === null ? "http://bridge/vero/webhook" : `http://bridge/vero/webhook?token=${token}`;
  return callWorker(new Request(url, { method: "POST", body, headers }), env);
}

/**
 * The messages the stand-in accepted, without what analytics-node adds on
 * its own and that changes with the library or runtime: context.library and
 * _metadata (the batch's sentAt and writeKey are not part of a message).
 */
async function receivedMessages(writeKey: string): Promise<Record<string, unknown>[]> {
  return segmentMessages(await segment.calls(writeKey)).map((message) => {
    const { _metadata, context, ...rest } = message as { _metadata?: unknown; context?: Record<string, unknown> };
    const { library, ...ownContext } = context ?? {};
    expect(library).toMatchObject({ name: "@segment/analytics-node" });
    return { ...rest, context: ownContext };
  });
}

async function expectNothingAccepted(writeKey: string) {
  expect(await segment.accepted(writeKey)).toEqual([]);
}

describe("POST /vero/webhook delivers every Vero type to Segment", () => {
  it.each(ALL_CASES.map((row) => [row.name, row] as const))("delivers %s", async (_name, { payload, expected }) => {
    const { env, writeKey } = await isolatedEnv();
    const response = await postWebhook(env, JSON.stringify(payload));
    expect(response.status).toBe(200);
    const body = (await response.json()) as { ok: boolean; messageId: string };
    expect(body).toMatchObject({ ok: true, messageId: expect.stringMatching(MESSAGE_ID) });

    const messages = await receivedMessages(writeKey);
    expect(messages).toStrictEqual([expected(expect.stringMatching(ISO_TIME))]);
    expect(messages[0]?.messageId).toBe(body.messageId);
  });

  it("answers with the messageId and the event name it sent", async () => {
    const { env } = await isolatedEnv();
    const response = await postWebhook(env, JSON.stringify(clicked));
    expect(await response.json()).toStrictEqual({
      ok: true,
      messageId: expect.stringMatching(MESSAGE_ID),
      call: "track",
      event: "Email Link Clicked",
    });
  });

  it("sends the same messageId when the same webhook arrives twice, so Segment de-duplicates it", async () => {
    const { env, writeKey } = await isolatedEnv();
    const first = (await (await postWebhook(env, JSON.stringify(clicked))).json()) as { messageId: string };
    const second = (await (await postWebhook(env, JSON.stringify(clicked, null, 2))).json()) as { messageId: string };
    expect(second.messageId).toBe(first.messageId);
    const ids = (await receivedMessages(writeKey)).map((message) => message.messageId);
    expect(ids).toEqual([first.messageId, first.messageId]);
  });

  it("sends different messageIds for different webhooks", async () => {
    const { env } = await isolatedEnv();
    const a = (await (await postWebhook(env, JSON.stringify(clicked))).json()) as { messageId: string };
    const b = (await (await postWebhook(env, JSON.stringify({ ...clicked, clicked_at: 1435016239 }))).json()) as {
      messageId: string;
    };
    expect(a.messageId).not.toBe(b.messageId);
  });
});

describe("POST /vero/webhook reads the body whatever its Content-Type", () => {
  it("delivers a body sent without a Content-Type", async () => {
    const { env, writeKey } = await isolatedEnv();
    // A string body gets text/plain from the Request constructor; a byte body gets no Content-Type at all.
    const request = new Request(`http://bridge/vero/webhook?token=${TOKEN}`, {
      method: "POST",
      body: new TextEncoder().encode(JSON.stringify(clicked)),
    });
    expect(request.headers.get("content-type")).toBeNull();
    expect((await callWorker(request, env)).status).toBe(200);
    expect(await receivedMessages(writeKey)).toHaveLength(1);
  });

  it("delivers a JSON body labelled as a form or as text", async () => {
    const { env, writeKey } = await isolatedEnv();
    for (const type of ["application/x-www-form-urlencoded", "text/plain"]) {
      const response = await postWebhook(env, JSON.stringify(clicked), { headers: { "content-type": type } });
      expect(response.status).toBe(200);
    }
    expect(await receivedMessages(writeKey)).toHaveLength(2);
  });

  it("decodes URL-encoded JSON, and gives it the same messageId as the plain JSON", async () => {
    const { env, writeKey } = await isolatedEnv();
    const plain = (await (await postWebhook(env, JSON.stringify(clicked))).json()) as { messageId: string };
    const encoded = await postWebhook(env, encodeURIComponent(JSON.stringify(clicked)), {
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(encoded.status).toBe(200);
    expect(((await encoded.json()) as { messageId: string }).messageId).toBe(plain.messageId);
    const [first, second] = await receivedMessages(writeKey);
    expect(second).toStrictEqual(first);
  });

  it("returns 400 for a body that is not UTF-8, and sends nothing", async () => {
    const { env, writeKey } = await isolatedEnv();
    const bytes = new Uint8Array([...new TextEncoder().encode('{"type":"clicked","x":"'), 0xff, 0x22, 0x7d]);
    const request = new Request(`http://bridge/vero/webhook?token=${TOKEN}`, { method: "POST", body: bytes });
    expect((await expectJsonError(await callWorker(request, env), 400)).error.message).toBe("body is not valid UTF-8");
    expect(await segment.calls(writeKey)).toEqual([]);
  });

  it("reads + as a space in URL-encoded JSON, as form encoding does", async () => {
    const { env, writeKey } = await isolatedEnv();
    const body = encodeURIComponent(JSON.stringify(clicked)).replace(/%20/g, "+");
    expect(body).toContain("+");
    expect((await postWebhook(env, body)).status).toBe(200);
    const [message] = await receivedMessages(writeKey);
    expect(message?.properties).toMatchObject({ campaign_name: "Order confirmation" });
  });
});

describe("POST /vero/webhook refuses what it cannot use", () => {
  it.each([
    ["missing", null],
    ["wrong", "wrong"],
  ])("returns 401 when the token is %s, and sends nothing", async (_what, token) => {
    const { env, writeKey } = await isolatedEnv();
    await expectJsonError(await postWebhook(env, JSON.stringify(clicked), { token }), 401);
    expect(await segment.calls(writeKey)).toEqual([]);
  });

  const refusals: [string, string, RegExp][] = [
    ["malformed JSON", '{"type": "clicked", "user": {', /^body is not valid JSON/],
    ["an empty body", "  ", /^empty body/],
    ["a JSON array", JSON.stringify([clicked]), /^body must be a JSON object, got an array/],
    ["a payload without a type", JSON.stringify({ user: clicked.user }), /^no type/],
    ["a payload without a user", JSON.stringify({ type: "clicked", clicked_at: 1435016238 }), /^no user/],
    [
      "a user with neither id nor email",
      JSON.stringify({ ...clicked, user: { firstname: "Steve" } }),
      /^no user id or email/,
    ],
    ["broken percent-encoding", "%7B%22type%22%3A%ZZ", /not valid percent-encoding/],
  ];
  it.each(refusals)("returns 400 naming the problem for %s, and sends nothing", async (_what, body, message) => {
    const { env, writeKey } = await isolatedEnv();
    const error = await expectJsonError(await postWebhook(env, body), 400);
    expect(error.error.message).toMatch(message);
    expect(await segment.calls(writeKey)).toEqual([]);
  });

  it("lists every problem of a payload in the 400's details", async () => {
    const { env } = await isolatedEnv();
    const body = JSON.stringify({ ...clicked, campaign: { ...clicked.campaign, name: {}, subject: [] } });
    const error = await expectJsonError(await postWebhook(env, body), 400);
    expect(error.error.details).toStrictEqual({
      issues: [
        { path: "campaign.name", message: "must be a string or a number" },
        { path: "campaign.subject", message: "must be a string or a number" },
      ],
    });
  });

  it("acknowledges a type it does not forward with 200, and sends nothing", async () => {
    const { env, writeKey } = await isolatedEnv();
    const response = await postWebhook(env, JSON.stringify({ ...clicked, type: "dropped" }));
    expect(response.status).toBe(200);
    expect(await response.json()).toStrictEqual({
      ok: true,
      ignored: 'Vero type "dropped" is not forwarded to Segment',
    });
    expect(await segment.calls(writeKey)).toEqual([]);
  });

  it("returns 413 for a body over 1 MiB, and sends nothing", async () => {
    const { env, writeKey } = await isolatedEnv();
    const body = JSON.stringify({ ...clicked, padding: "x".repeat(1024 * 1024) });
    await expectJsonError(await postWebhook(env, body), 413);
    expect(await segment.calls(writeKey)).toEqual([]);
  });

  it("returns 400 when the event is over Segment's 32 KB, since resending cannot help", async () => {
    const { env, writeKey } = await isolatedEnv();
    const body = JSON.stringify({ ...userCreated, user: { ...userCreated.user, notes: "x".repeat(40 * 1024) } });
    const error = await expectJsonError(await postWebhook(env, body), 400);
    expect(error.error.code).toBe("segment_rejected");
    await expectNothingAccepted(writeKey);
  });
});

describe("POST /vero/webhook when Segment fails", () => {
  it("retries a passing 500 inside the request and answers 200 once Segment took the event", async () => {
    const { env, writeKey } = await isolatedEnv();
    await segment.fail(writeKey, { status: 500, times: 1 });
    const response = await postWebhook(env, JSON.stringify(clicked));
    expect(response.status).toBe(200);
    const calls = await segment.calls(writeKey);
    expect(calls.map((call) => call.status)).toEqual([500, 200]);
    expect(segmentMessages(calls)).toHaveLength(1);
  });

  it("returns 503 (never 2xx) while Segment answers 500, and a resend by Vero then delivers", async () => {
    const { env, writeKey } = await isolatedEnv();
    await segment.fail(writeKey, { status: 500 });
    const failed = await postWebhook(env, JSON.stringify(clicked));
    const error = await expectJsonError(failed, 503);
    expect(error.error).toMatchObject({
      code: "segment_unavailable",
      details: { upstream: "segment", upstreamStatus: 500, retryable: true },
    });
    expect(await segment.calls(writeKey)).not.toEqual([]);
    await expectNothingAccepted(writeKey);

    await segment.heal(writeKey);
    const resent = await postWebhook(env, JSON.stringify(clicked));
    expect(resent.status).toBe(200);
    const messages = await receivedMessages(writeKey);
    expect(messages).toHaveLength(1);
    expect(messages[0]?.messageId).toBe(((await resent.json()) as { messageId: string }).messageId);
  }, 20_000);

  it("returns 503 with Segment's Retry-After when Segment answers 429, and a resend then delivers", async () => {
    const { env, writeKey } = await isolatedEnv();
    await segment.fail(writeKey, { status: 429, retryAfter: 7 });
    const failed = await postWebhook(env, JSON.stringify(clicked));
    const error = await expectJsonError(failed, 503);
    expect(error.error).toMatchObject({ code: "segment_unavailable", details: { upstreamStatus: 429 } });
    expect(failed.headers.get("retry-after")).toBe("7");
    await expectNothingAccepted(writeKey);

    await segment.heal(writeKey);
    expect((await postWebhook(env, JSON.stringify(clicked))).status).toBe(200);
    expect(await receivedMessages(writeKey)).toHaveLength(1);
  });

  it("returns 503 when Segment answers 429 without Retry-After, after retrying", async () => {
    const { env, writeKey } = await isolatedEnv();
    await segment.fail(writeKey, { status: 429 });
    const error = await expectJsonError(await postWebhook(env, JSON.stringify(clicked)), 503);
    expect(error.error).toMatchObject({ code: "segment_unavailable", details: { upstreamStatus: 429 } });
    await expectNothingAccepted(writeKey);
  }, 20_000);

  it("returns 503 when Segment does not answer before the deadline", async () => {
    const { env, writeKey } = await isolatedEnv();
    await segment.fail(writeKey, { delayMs: 12_000 });
    const error = await expectJsonError(await postWebhook(env, JSON.stringify(clicked)), 503);
    expect(error.error).toMatchObject({ code: "segment_unavailable", details: { retryable: true } });
  }, 30_000);

  it("returns 503 naming the settings when Segment refuses the write key", async () => {
    const { env } = await isolatedEnv({ SEGMENT_WRITE_KEY: "a-key-segment-does-not-know" });
    const error = await expectJsonError(await postWebhook(env, JSON.stringify(clicked)), 503);
    expect(error.error.code).toBe("segment_refused");
    expect(error.error.message).toMatch(/SEGMENT_WRITE_KEY/);
    expect(error.error.message).not.toContain("a-key-segment-does-not-know");
  });

  it("returns 503 when Segment cannot be reached at all", async () => {
    // Port 9 (discard) on localhost: nothing listens, so the connection is refused. workerd logs an
    // "uncaught exception" for every refused fetch even when the rejection is handled, as this one is.
    const { env } = await isolatedEnv({ SEGMENT_API_HOST: "http://127.0.0.1:9" });
    const error = await expectJsonError(await postWebhook(env, JSON.stringify(clicked)), 503);
    expect(error.error.code).toBe("segment_unavailable");
  }, 20_000);
});
