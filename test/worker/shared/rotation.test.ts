/**
 * Secret rotation without downtime: while a secret holds "old,new" both
 * values are accepted and any third is refused; before and after, only the
 * one value set. Walks the rotation steps of docs/security.md for each secret.
 */
import { describe, expect, it } from "vitest";
import type { Env } from "../../../src/shared/env.ts";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";
import { basic, callWorker, expectJsonError, isolatedEnv, segment, vero } from "../helpers/env.ts";

const OLD = "old-value-1a2b3c-0123456789abcdef01";
const NEW = "new-value-4d5e6f-0123456789abcdef01";
const THIRD = "third-value-7a8b9c-0123456789abcdef";

/** The three stages of a rotation: the old value alone, both (with the spaces an operator may type), the new alone. */
const STAGES = [
  { secret: OLD, accepted: [OLD], refused: [NEW, THIRD] },
  { secret: ` ${OLD} , ${NEW}\n`, accepted: [OLD, NEW], refused: [THIRD, `${OLD},${NEW}`, ""] },
  { secret: NEW, accepted: [NEW], refused: [OLD, THIRD] },
] as const;

const opened = JSON.stringify({ type: "opened", opened_at: 1435016238, user: { id: 123, email: "steve@getvero.com" } });

describe("VERO_WEBHOOK_TOKEN", () => {
  for (const stage of STAGES) {
    it(`set to ${JSON.stringify(stage.secret)}: accepts ${stage.accepted.join(" and ")}, refuses the rest`, async () => {
      const { env, writeKey } = await isolatedEnv({ VERO_WEBHOOK_TOKEN: stage.secret });
      const post = (token: string) =>
        callWorker(
          new Request(`http://bridge/vero/webhook?token=${encodeURIComponent(token)}`, {
            method: "POST",
            body: opened,
          }),
          env,
        );
      for (const token of stage.accepted) expect((await post(token)).status).toBe(200);
      for (const token of stage.refused) await expectJsonError(await post(token), 401);
      // The same webhook each time: Segment holds one call per accepted request.
      expect(await segment.accepted(writeKey)).toHaveLength(stage.accepted.length);
    });
  }
});

/**
 * X-Signature known answers, computed outside the code for each accepted secret of each stage:
 * printf '%s' '{"type":"track","messageId":"rot-<stage>-<secret>-<raw|batch>","userId":"u-1","event":"Rotated"}' |
 *   openssl dgst -sha1 -hmac <secret>
 */
const SIGNATURES: Record<string, string> = {
  [`0-${OLD}-raw`]: "bb7898def91de9a97bfc8bdd3304f5ae383feafc",
  [`0-${OLD}-batch`]: "861a46cac1289643d280353893353d15628588b0",
  [`1-${OLD}-raw`]: "9b1f71b4a64aa1b0b73c93d50e6b213613d316fe",
  [`1-${OLD}-batch`]: "9125f95d2963e8e2fef88b17b8486bfdb48e0fd8",
  [`1-${NEW}-raw`]: "b4c2ab97ec7ca443304858668432f9f88c3fa0e0",
  [`1-${NEW}-batch`]: "02bc16f67acaf5d4cf2f8a46cf6470842f37c65d",
  [`2-${NEW}-raw`]: "3790838d4ce7712977ee93e8a554c16f032ac64d",
  [`2-${NEW}-batch`]: "f3076d985e82d3ba132caf7e59674e9d724acce3",
};

describe("SEGMENT_SHARED_SECRET", () => {
  /** A track of its own messageId per request, so that each accepted one is a call of its own at Vero. */
  const event = (messageId: string) => ({ type: "track", messageId, userId: "u-1", event: "Rotated" });
  const signed = (env: Env, signature: string, body: unknown) =>
    callWorker(
      new Request("http://bridge/segment", {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "X-Signature": signature },
      }),
      env,
    );
  const withBasic = (env: Env, secret: string, path: string, messageId: string) =>
    callWorker(
      new Request(`http://bridge${path}`, {
        method: "POST",
        body: JSON.stringify(event(messageId)),
        headers: { Authorization: basic(secret) },
      }),
      env,
    );

  for (const [index, stage] of STAGES.entries()) {
    it(`set to ${JSON.stringify(stage.secret)}: X-Signature, Actions batches and Basic with ${stage.accepted.join(" and ")}, nothing else`, async () => {
      // First-event signatures on, so that batches signed the way Webhooks (Actions) signs them rotate too.
      const { env, veroToken } = await isolatedEnv({
        SEGMENT_SHARED_SECRET: stage.secret,
        SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: "true",
      });
      const delivered: string[] = [];
      for (const secret of stage.accepted) {
        const id = `rot-${index}-${secret}`;
        const raw = event(`${id}-raw`);
        const batch = [event(`${id}-batch`), event(`${id}-batch-2`)];
        expect((await signed(env, SIGNATURES[`${id.slice(4)}-raw`] ?? "", raw)).status).toBe(202);
        // Webhooks (Actions) sign the first event of a batch.
        expect((await signed(env, SIGNATURES[`${id.slice(4)}-batch`] ?? "", batch)).status).toBe(202);
        expect((await withBasic(env, secret, "/segment", `${id}-basic`)).status).toBe(202);
        expect((await withBasic(env, secret, "/v1/track", `${id}-v1`)).status).toBe(200);
        delivered.push(raw.messageId, ...batch.map((one) => one.messageId), `${id}-basic`, `${id}-v1`);
      }
      for (const secret of stage.refused.filter((value) => value !== "")) {
        const refused = event("rot-refused");
        await expectJsonError(await signed(env, await hmacSha1Hex(secret, JSON.stringify(refused)), refused), 401);
        await expectJsonError(await signed(env, await hmacSha1Hex(secret, JSON.stringify(refused)), [refused]), 401);
        await expectJsonError(await withBasic(env, secret, "/segment", "rot-refused"), 401);
        await expectJsonError(await withBasic(env, secret, "/v1/track", "rot-refused"), 401);
      }
      // Every accepted request reached Vero, and nothing refused did.
      expect(await vero.accepted(veroToken)).toHaveLength(delivered.length);
    });
  }
});

describe("ADMIN_TOKEN", () => {
  for (const stage of STAGES) {
    it(`set to ${JSON.stringify(stage.secret)}: accepts ${stage.accepted.join(" and ")} as the bearer, refuses the rest`, async () => {
      const { env } = await isolatedEnv({ ADMIN_TOKEN: stage.secret }, { ledger: true });
      const list = (token: string) =>
        callWorker(
          new Request("http://bridge/admin/dead-letters", { headers: { Authorization: `Bearer ${token}` } }),
          env,
        );
      for (const token of stage.accepted) expect((await list(token)).status).toBe(200);
      for (const token of stage.refused) await expectJsonError(await list(token), 401);
    });
  }
});

describe("a secret holding more than two values", () => {
  it("leaves its direction unconfigured (503 naming it) rather than accepting a third value", async () => {
    const { env } = await isolatedEnv({ VERO_WEBHOOK_TOKEN: `${OLD},${NEW},${THIRD}` });
    const response = await callWorker(
      new Request(`http://bridge/vero/webhook?token=${THIRD}`, { method: "POST", body: opened }),
      env,
    );
    expect((await expectJsonError(response, 503)).error.message).toBe(
      "inbound is not configured: fix VERO_WEBHOOK_TOKEN holds more than two values",
    );
  });
});
