/**
 * What the bridge writes to its logs over a full run: every Vero type
 * inbound, every Segment call type outbound, upstream failures, refused
 * credentials and invalid payloads. Every line must be one JSON object,
 * and no email address, secret or Authorization header from the inputs may
 * appear in any of them. The Worker runs in this isolate, so its console
 * is this test's console.
 */
import { describe, expect, it } from "vitest";
import type { Env } from "../../../src/shared/env.ts";
import { fingerprint, redactEmails } from "../../../src/shared/log.ts";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";
import { callWorker, isolatedEnv, segment, vero } from "../helpers/env.ts";
import { capturingLogs } from "../helpers/fuzz.ts";
import { ALL_CASES } from "../helpers/inbound-cases.ts";
import { SEGMENT_EVENTS, SKIPPED_EVENTS } from "../helpers/segment-events.ts";

// Distinctive values, so that a leak cannot hide behind a coincidence.
const WEBHOOK_TOKENS = ["whk-old-0d6f1c7a9b2e-5e8a3b1c7d4f0d6f", "whk-new-5e8a3b1c7d4f-0d6f1c7a9b2e5e8a"];
const SHARED_SECRETS = ["shs-old-8c1e4a7b2d9f-3f6b9d2a5c8e8c1e", "shs-new-3f6b9d2a5c8e-8c1e4a7b2d9f3f6b"];
const ADMIN_TOKENS = ["adm-old-7a2c5e8b1d4f-1b4d7f0a3c6e7a2c", "adm-new-1b4d7f0a3c6e-7a2c5e8b1d4f1b4d"];

const EMAIL = /[^\s@"'<>(),;:[\]{}\\]+@[^\s@"'<>(),;:[\]{}\\]+\.[A-Za-z]{2,}/g;

/** Every request of the run, kept so that the emails in them can be listed afterwards. */
const sent: string[] = [];

async function send(env: Env, request: Request): Promise<Response> {
  const clone = request.clone();
  sent.push(`${request.url} ${[...request.headers].join(" ")} ${await clone.text()}`);
  const response = await callWorker(request, env);
  await response.arrayBuffer();
  return response;
}

const webhook = (env: Env, body: unknown, token = WEBHOOK_TOKENS[1]) =>
  send(
    env,
    new Request(`http://bridge/vero/webhook?token=${encodeURIComponent(token ?? "")}`, {
      method: "POST",
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );

async function signed(env: Env, body: unknown, secret = SHARED_SECRETS[0] ?? "") {
  const raw = JSON.stringify(body);
  return send(
    env,
    new Request("http://bridge/segment", {
      method: "POST",
      body: raw,
      headers: { "X-Signature": await hmacSha1Hex(secret, raw) },
    }),
  );
}

const api = (env: Env, path: string, body: unknown, authorization: string) =>
  send(
    env,
    new Request(`http://bridge${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { Authorization: authorization },
    }),
  );

const basicOf = (secret: string) => `Basic ${btoa(`${secret}:`)}`;

describe("the logs of a full run", () => {
  it("are JSON lines without an email, a secret or an Authorization header from the inputs", async () => {
    const { env, writeKey, veroToken } = await isolatedEnv(
      {
        VERO_WEBHOOK_TOKEN: WEBHOOK_TOKENS.join(","),
        SEGMENT_SHARED_SECRET: SHARED_SECRETS.join(", "),
        ADMIN_TOKEN: ADMIN_TOKENS.join(","),
        // Every success line too, as before sampling: the run checks them all.
        LOG_SAMPLE_RATE: "1",
      },
      { ledger: true },
    );
    const statuses: number[] = [];
    const expectStatus = async (response: Promise<Response>, status: number | number[]) => {
      const { status: actual } = await response;
      statuses.push(actual);
      expect([status].flat()).toContain(actual);
    };
    // Outbound events are taken by their users' mailboxes (202), or skipped (200).
    const TAKEN = [200, 202];

    const { lines } = await capturingLogs(async () => {
      // Inbound: every Vero type, with either token of the rotation.
      for (const [index, { payload }] of ALL_CASES.entries())
        await expectStatus(webhook(env, payload, WEBHOOK_TOKENS[index % 2]), 200);
      await expectStatus(webhook(env, { type: "x-unknown mail.as.type@example.com" }), 200);
      await expectStatus(webhook(env, { type: "opened", user: { id: {}, email: "invalid.user@example.com" } }), 400);
      await expectStatus(webhook(env, "not json, from broken.json@example.com"), 400);
      await expectStatus(webhook(env, ALL_CASES[0]?.payload, "wrong-token-9f8e7d"), 401);
      // Segment failing: once then taking it (a retry inside one request), then refusing the event.
      await segment.fail(writeKey, { status: 500, times: 1 });
      await expectStatus(webhook(env, { type: "clicked", user: { id: 7, email: "retried.user@example.com" } }), 200);
      await segment.fail(writeKey, { status: 400, times: 1 });
      await expectStatus(webhook(env, { type: "opened", user: { email: "refused.user@example.com" } }), 400);

      // Outbound: every Segment call type, signed and with Basic, with either secret of the rotation.
      for (const [index, event] of [...Object.values(SEGMENT_EVENTS), ...SKIPPED_EVENTS].entries()) {
        await expectStatus(signed(env, event, SHARED_SECRETS[index % 2]), TAKEN);
        await expectStatus(
          // A second delete of the same user is Vero's 404 "user not found": the batch deletes another one.
          api(
            env,
            "/v1/batch",
            { batch: [event.type === "delete" ? { ...event, userId: `${event.userId}-again` } : event] },
            basicOf(SHARED_SECRETS[(index + 1) % 2] ?? ""),
          ),
          TAKEN,
        );
      }
      await expectStatus(
        api(
          env,
          "/v1/identify",
          { userId: "u-9", traits: { email: "v1.identify@example.com" } },
          basicOf(SHARED_SECRETS[0] ?? ""),
        ),
        TAKEN,
      );
      // Vero failing: retried by the mailbox, then refused (a dead letter); both requests are taken.
      await vero.fail(veroToken, { status: 500, times: 1 });
      await expectStatus(
        signed(env, { type: "identify", userId: "u-1", traits: { email: "vero.down@example.com" } }),
        202,
      );
      await vero.fail(veroToken, { status: 400, times: 1 });
      await expectStatus(
        signed(env, { type: "identify", userId: "u-2", traits: { email: "vero.refused@example.com" } }),
        202,
      );
      // Invalid events that carry emails, in their ids and where a name belongs.
      await expectStatus(signed(env, { type: "track", userId: "id.is.email@example.com", event: { a: 1 } }), 400);
      await expectStatus(
        signed(env, { type: "identify", userId: "u-1", traits: { email: `${"x".repeat(250)}@too.long.example.com` } }),
        400,
      );
      await expectStatus(
        signed(env, { type: "track", event: "No Id", context: { traits: { email: "no.id@example.com" } } }),
        400,
      );
      // Wrong credentials, with a secret where it does not belong.
      await expectStatus(api(env, "/v1/track", { userId: "u-1", event: "E" }, `Bearer ${SHARED_SECRETS[0]}`), 401);
      await expectStatus(api(env, "/v1/track", { userId: "u-1", event: "E" }, basicOf(`${SHARED_SECRETS[1]}x`)), 401);
      await expectStatus(signed(env, { type: "track", userId: "u-1", event: "E" }, "not-the-secret"), 401);
      await expectStatus(api(env, "/segment", { userId: "u-1" }, `Basic ${btoa(`x:${SHARED_SECRETS[0]}`)}`), 401);
      // Admin, with both tokens and a wrong one, and unknown paths that carry an email.
      for (const token of [...ADMIN_TOKENS, "adm-wrong-000000"]) {
        const admin = new Request("http://bridge/admin/dead-letters", {
          headers: { Authorization: `Bearer ${token}` },
        });
        await expectStatus(send(env, admin), token.startsWith("adm-wrong") ? 401 : 200);
      }
      await expectStatus(send(env, new Request("http://bridge/users/path.email@example.com")), 404);
      await expectStatus(send(env, new Request(`http://bridge/vero/webhook?token=${WEBHOOK_TOKENS[0]}`)), 405);
    });

    // Every line of ours is one JSON object with a level and a message.
    expect(lines.length).toBeGreaterThan(statuses.length);
    for (const line of lines) {
      const parsed: unknown = JSON.parse(line);
      expect(parsed, line).toMatchObject({ level: expect.any(String), msg: expect.any(String) });
    }

    const emails = new Set(sent.flatMap((text) => text.match(EMAIL) ?? []));
    expect(emails.size).toBeGreaterThanOrEqual(15);
    const secrets = [
      ...WEBHOOK_TOKENS,
      ...SHARED_SECRETS,
      ...ADMIN_TOKENS,
      writeKey,
      veroToken,
      ...SHARED_SECRETS.map((secret) => btoa(`${secret}:`)),
      btoa(`x:${SHARED_SECRETS[0]}`),
    ];
    const all = lines.join("\n");
    for (const email of emails) expect(all, `email ${email} is in the logs`).not.toContain(email);
    for (const secret of secrets) expect(all, `secret ${secret} is in the logs`).not.toContain(secret);
    // Nor the local part alone, which is as identifying.
    for (const email of emails) {
      const local = email.split("@")[0] ?? "";
      if (local.length >= 8) expect(all, `${local} is in the logs`).not.toContain(local);
    }

    // One line per request, one per delivery attempt.
    const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const byMsg = (msg: string) => parsed.filter((line) => line.msg === msg);
    expect(byMsg("vero webhook")).toHaveLength(ALL_CASES.length + 6);
    // Counted by status, not in total: on a loaded machine a slow attempt may time out and be retried.
    const segmentCalls = byMsg("segment call");
    const deliveredIds = new Set(segmentCalls.filter((line) => line.status === 200).flatMap((line) => line.messageIds));
    expect(deliveredIds.size).toBe(ALL_CASES.length + 1);
    expect(segmentCalls.filter((line) => line.status === 500)).toHaveLength(1);
    expect(segmentCalls.filter((line) => line.status === 400)).toHaveLength(1);
    const veroCalls = byMsg("vero call");
    expect(veroCalls.filter((line) => line.outcome === "retryable" && line.status === 500)).toHaveLength(1);
    expect(veroCalls.filter((line) => line.outcome === "refused" && line.status === 400)).toHaveLength(1);
    expect(byMsg("outbound request").length).toBeGreaterThanOrEqual(2 * (Object.keys(SEGMENT_EVENTS).length + 2));
    expect(byMsg("request refused").map((line) => line.status)).toEqual([401, 401, 401, 401, 401, 404, 405]);
    expect(all).toContain("fp:");
  }, 60_000);
});

describe("fingerprint and redactEmails", () => {
  it("fingerprint is the first 64 bits of SHA-256 (the published vectors), so anyone can compute one to search by", () => {
    expect(fingerprint("")).toBe("fp:e3b0c44298fc1c14");
    expect(fingerprint("a")).toBe("fp:ca978112ca1bbdca");
    expect(fingerprint("foobar")).toBe("fp:c3ab8ff13720e8ad");
  });

  it("replaces each email-like part and leaves text without '@' as it is", () => {
    expect(redactEmails("to jane@example.com and x@y")).toBe(
      `to ${fingerprint("jane@example.com")} and ${fingerprint("x@y")}`,
    );
    const plain = "vero-7e5437a358da4ea92d92fce6729b73df";
    expect(redactEmails(plain)).toBe(plain);
  });
});
