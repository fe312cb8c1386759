/**
 * The event tester's JSON routes (Bearer ADMIN_TOKEN): a dry run shows the
 * filter decision and the exact upstream calls with the credential masked and
 * sends nothing; `send: true` delivers through the routes' own hand-overs.
 * Against the stand-ins over real HTTP.
 */
import { describe, expect, it } from "vitest";
import { segmentMessages } from "../../../dev/stand-ins/client.ts";
import { storeDeadLetters } from "../../../src/delivery/dead-letters.ts";
import type { Env } from "../../../src/shared/env.ts";
import opened from "../../fixtures/vero/opened.json";
import { callWorker, expectJsonError, isolatedEnv, segment, vero } from "../helpers/env.ts";
import { trackJob } from "../helpers/queue.ts";

const ADMIN = "tester-admin-token-0123456789abcdef";

const filters = JSON.stringify([
  { title: "No page views", if: 'type = "page"', actions: [{ type: "DROP" }], enabled: true },
  {
    title: "No phone numbers",
    if: "all",
    actions: [{ type: "DROP_PROPERTIES", fields: { traits: ["phone"] } }],
    enabled: true,
  },
]);

async function testerEnv() {
  const isolated = await isolatedEnv({ ADMIN_TOKEN: ADMIN, DESTINATION_FILTERS: filters }, { ledger: true });
  return isolated;
}

async function tester(env: Env, direction: "segment" | "vero", body: unknown, token = ADMIN) {
  return callWorker(
    new Request(`http://bridge/admin/tester/${direction}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { Authorization: `Bearer ${token}`, "content-type": "application/json" },
    }),
    env,
  );
}

const identify = {
  type: "identify",
  messageId: "tester-json-identify",
  userId: "tester-user",
  traits: { email: "jane@example.com", phone: "+15550100" },
  context: { device: { token: "device-1" }, os: { name: "iOS" } },
};

describe("POST /admin/tester/segment", () => {
  it("shows each event's filter decision and exact Vero calls, the credential masked, and sends nothing", async () => {
    const { env, veroToken } = await testerEnv();
    const response = await tester(env, "segment", {
      payload: [identify, { type: "page", messageId: "tester-json-page", userId: "tester-user" }],
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).not.toContain(veroToken);
    expect(JSON.parse(text)).toEqual({
      ok: true,
      direction: "outbound",
      events: [
        {
          messageId: "tester-json-identify",
          index: 0,
          outcome: "send",
          editedBy: ["No phone numbers"],
          calls: [
            {
              method: "POST",
              url: `${env.VERO_API_URL}/users/track`,
              body: {
                id: "tester-user",
                email: "jane@example.com",
                channels: [{ type: "push", address: "device-1", platform: "ios" }],
                data: { email: "jane@example.com", id: "tester-user" },
                auth_token: "<VERO_AUTH_TOKEN>",
              },
            },
          ],
        },
        {
          messageId: "tester-json-page",
          index: 1,
          outcome: "filtered",
          filter: "No page views",
          reason: 'destination filter "No page views" (drop)',
          calls: [],
        },
      ],
    });
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("with send: true, hands the events to the user's mailbox, which delivers them to Vero", async () => {
    const { env, veroToken } = await testerEnv();
    const response = await tester(env, "segment", { payload: identify, send: true });
    const body = (await response.json()) as { sent: unknown[] };
    expect(body.sent).toEqual([{ ok: true, detail: "the user's mailbox took 1 job(s) and delivers them in order" }]);
    const calls = await vero.calls(veroToken);
    expect(calls.map((call) => [call.status, call.path, (call.body as { id: string }).id])).toEqual([
      [200, "/api/v2/users/track", "tester-user"],
    ]);
  });

  it("tests a dead letter by id, and refuses one from the other direction", async () => {
    const { env } = await testerEnv();
    const job = trackJob("tester-letter-user", "Letter Event");
    const id = `tester-letter-${Date.now()}`;
    await storeDeadLetters(env.LEDGER as D1Database, [
      {
        id,
        source: "vero",
        body: job,
        reason: "test",
        permanent: true,
        attempts: 1,
        failedAt: new Date().toISOString(),
      },
    ]);
    const body = (await (await tester(env, "segment", { deadLetter: id })).json()) as { events: unknown[] };
    expect(body.events).toEqual([
      {
        messageId: job.messageId,
        index: 0,
        outcome: "send",
        calls: [
          {
            method: "POST",
            url: `${env.VERO_API_URL}/events/track`,
            body: { ...job.requests[0]?.body, auth_token: "<VERO_AUTH_TOKEN>" },
          },
        ],
      },
    ]);
    const wrong = await expectJsonError(await tester(env, "vero", { deadLetter: id }), 400);
    expect(wrong.error.message).toBe(`dead letter ${id} came from the vero queue: test it with /admin/tester/segment`);
  });

  it("refuses a wrong token, a body that is neither payload nor deadLetter, and invalid JSON", async () => {
    const { env } = await testerEnv();
    await expectJsonError(await tester(env, "segment", { payload: identify }, "wrong-token-0123456789abcdef0123"), 401);
    const neither = await expectJsonError(await tester(env, "segment", { send: true }), 400);
    expect(neither.error.message).toBe(
      "send exactly one of payload (an event or webhook) and deadLetter (a dead letter's id)",
    );
    const broken = await expectJsonError(await tester(env, "segment", { payload: "{nope" }), 400);
    expect(broken.error.message).toBe("the payload is not valid JSON");
  });
});

describe("POST /admin/tester/vero", () => {
  it("shows the Segment call a webhook becomes, the write key masked, and sends nothing", async () => {
    const { env, writeKey } = await testerEnv();
    const response = await tester(env, "vero", { payload: opened });
    const text = await response.text();
    expect(text).not.toContain(writeKey);
    const body = JSON.parse(text) as {
      events: { outcome: string; calls: { url: string; headers: unknown; body: { batch: { event: string }[] } }[] }[];
    };
    expect(body.events[0]?.outcome).toBe("send");
    expect(body.events[0]?.calls[0]).toMatchObject({
      url: `${env.SEGMENT_API_HOST}/v1/batch`,
      headers: { Authorization: "Basic <SEGMENT_WRITE_KEY>" },
      body: { batch: [{ type: "track", event: "Email Opened" }] },
    });
    expect(await segment.accepted(writeKey)).toEqual([]);
  });

  it("with send: true, delivers to Segment and says Segment accepted it; a dropped type is shown as filtered", async () => {
    const { env, writeKey } = await testerEnv();
    const sent = (await (await tester(env, "vero", { payload: opened, send: true })).json()) as { sent: unknown[] };
    expect(sent.sent).toEqual([{ ok: true, detail: "Segment accepted the message" }]);
    expect(segmentMessages(await segment.calls(writeKey)).map((message) => message.event)).toEqual(["Email Opened"]);

    const dropping = { ...env, VERO_WEBHOOK_TYPES_DROPPED: "opened" };
    const dropped = (await (await tester(dropping, "vero", { payload: opened })).json()) as { events: unknown[] };
    expect(dropped.events).toEqual([
      { messageId: null, index: 0, outcome: "filtered", reason: "VERO_WEBHOOK_TYPES_DROPPED lists opened", calls: [] },
    ]);
  });

  it("reports Segment's refusal when sending fails", async () => {
    const { env, writeKey } = await testerEnv();
    await segment.fail(writeKey, { status: 400, times: 1 });
    const sent = (await (await tester(env, "vero", { payload: opened, send: true })).json()) as { sent: unknown[] };
    expect(sent.sent).toEqual([{ ok: false, retryable: false, status: 400, error: expect.stringContaining("400") }]);
  });
});
