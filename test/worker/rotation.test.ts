/**
 * Secret rotation without downtime: while a secret holds "old,new" both
 * values are accepted and any third is refused; before and after, only the
 * one value set. Walks the rotation steps of docs/security.md for each secret.
 */
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/shared/env.ts";
import { hmacSha1Hex } from "../../src/shared/secrets.ts";
import { basic, callWorker, expectJsonError, isolatedEnv } from "./helpers.ts";

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
const track = { type: "track", messageId: "rot-1", userId: "u-1", event: "Rotated" };

describe("VERO_WEBHOOK_TOKEN", () => {
  for (const stage of STAGES) {
    it(`set to ${JSON.stringify(stage.secret)}: accepts ${stage.accepted.join(" and ")}, refuses the rest`, async () => {
      const { env } = await isolatedEnv({ VERO_WEBHOOK_TOKEN: stage.secret });
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
    });
  }
});

describe("SEGMENT_SHARED_SECRET", () => {
  const signed = async (env: Env, secret: string, body: unknown, over: unknown = body) =>
    callWorker(
      new Request("http://bridge/segment", {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "X-Signature": await hmacSha1Hex(secret, JSON.stringify(over)) },
      }),
      env,
    );
  const withBasic = (env: Env, secret: string, path: string) =>
    callWorker(
      new Request(`http://bridge${path}`, {
        method: "POST",
        body: JSON.stringify(track),
        headers: { Authorization: basic(secret) },
      }),
      env,
    );

  for (const stage of STAGES) {
    it(`set to ${JSON.stringify(stage.secret)}: X-Signature, Actions batches and Basic with ${stage.accepted.join(" and ")}, nothing else`, async () => {
      const { env } = await isolatedEnv({ SEGMENT_SHARED_SECRET: stage.secret });
      const batch = [track, { ...track, messageId: "rot-2" }];
      for (const secret of stage.accepted) {
        expect((await signed(env, secret, track)).status).toBe(200);
        // Webhooks (Actions) sign the first event of a batch.
        expect((await signed(env, secret, batch, batch[0])).status).toBe(200);
        expect((await withBasic(env, secret, "/segment")).status).toBe(200);
        expect((await withBasic(env, secret, "/v1/track")).status).toBe(200);
      }
      for (const secret of stage.refused.filter((value) => value !== "")) {
        await expectJsonError(await signed(env, secret, track), 401);
        await expectJsonError(await signed(env, secret, batch, batch[0]), 401);
        await expectJsonError(await withBasic(env, secret, "/segment"), 401);
        await expectJsonError(await withBasic(env, secret, "/v1/track"), 401);
      }
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
