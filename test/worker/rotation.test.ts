/**
 * Secret rotation without downtime: while a secret holds "old,new" both
 * values are accepted and any third is refused; before and after, only the
 * one value set. Walks the rotation steps of docs/security.md for each secret.
 */
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/shared/env.ts";
import { hmacSha1Hex } from "../../src/shared/secrets.ts";
import { basic, callWorker, expectJsonError, isolatedEnv, segment, vero } from "./helpers.ts";

const OLD = "old-value-1a2b3c";
const NEW = "new-value-4d5e6f";
const THIRD = "third-value-7a8b9c";

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
  [`0-${OLD}-raw`]: "65aca6e88c0532f54021f3b346c4efa64416539b",
  [`0-${OLD}-batch`]: "0362136f28c5ad326681f70cc52409440b6a1312",
  [`1-${OLD}-raw`]: "0cea715a377fb9836f0416dae872e97b0a9e97a3",
  [`1-${OLD}-batch`]: "dee7591da69374e15d750aedb4cc2d8beccc60ea",
  [`1-${NEW}-raw`]: "6173bf720ee9f18e9baf80f719115b1471b61eba",
  [`1-${NEW}-batch`]: "0f04c48b42bed994e81d7a91671d272eee829314",
  [`2-${NEW}-raw`]: "c1733b534b5ba918801ad5d86c23f98b40215008",
  [`2-${NEW}-batch`]: "e3f7d3f9dcc137236b5468ec395abcd85e8effd1",
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
      const { env, veroToken } = await isolatedEnv({ SEGMENT_SHARED_SECRET: stage.secret });
      const delivered: string[] = [];
      for (const secret of stage.accepted) {
        const id = `rot-${index}-${secret}`;
        const raw = event(`${id}-raw`);
        const batch = [event(`${id}-batch`), event(`${id}-batch-2`)];
        expect((await signed(env, SIGNATURES[`${id.slice(4)}-raw`] ?? "", raw)).status).toBe(202);
        // Webhooks (Actions) sign the first event of a batch.
        expect((await signed(env, SIGNATURES[`${id.slice(4)}-batch`] ?? "", batch)).status).toBe(202);
        expect((await withBasic(env, secret, "/segment", `${id}-basic`)).status).toBe(202);
        expect((await withBasic(env, secret, "/v1/track", `${id}-v1`)).status).toBe(202);
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
