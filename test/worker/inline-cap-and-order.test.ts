/**
 * Inline mode refuses, before any call, a request needing more Vero calls
 * than INLINE_MAX_VERO_CALLS; queue mode keeps one user's jobs in the order
 * of their request, across retries.
 */
import { describe, expect, it } from "vitest";
import { DEV_SECRETS } from "../../dev/dev-settings.ts";
import { QUEUE_NAMES } from "../../src/delivery/settlement.ts";
import type { VeroJob } from "../../src/outbound/job.ts";
import type { Env } from "../../src/shared/env.ts";
import { basic, callWorker, expectJsonError, isolatedEnv, vero } from "./helpers.ts";
import { runBatch } from "./queue-helpers.ts";

const track = (i: number) => ({
  type: "track",
  messageId: `t-${i}`,
  userId: `u-${i}`,
  event: "Viewed",
  properties: {},
});

const post = (env: Env, events: unknown[]) =>
  callWorker(
    new Request("http://bridge/v1/batch", {
      method: "POST",
      body: JSON.stringify({ batch: events }),
      headers: { authorization: basic(DEV_SECRETS.SEGMENT_SHARED_SECRET), "content-type": "application/json" },
    }),
    env,
  );

describe("inline mode's cap on Vero calls per request", () => {
  it("refuses a request over INLINE_MAX_VERO_CALLS with a 413 naming the limit and the setting, calling Vero not once", async () => {
    const { env, veroToken } = await isolatedEnv({ INLINE_MAX_VERO_CALLS: "3" });
    const error = await expectJsonError(await post(env, [0, 1, 2, 3].map(track)), 413);
    expect(error.error).toMatchObject({
      code: "too_many_vero_calls",
      message:
        "the request needs 4 Vero calls, over the inline limit of 3 (INLINE_MAX_VERO_CALLS); send smaller batches, or bind VERO_QUEUE to deliver through the queue",
      details: { calls: 4, limit: 3, setting: "INLINE_MAX_VERO_CALLS" },
    });
    expect(await vero.calls(veroToken)).toEqual([]);
    expect((await post(env, [0, 1, 2].map(track))).status).toBe(200);
    expect(await vero.accepted(veroToken)).toHaveLength(3);
  });

  it("defaults to the Workers Free plan's 50 subrequests", async () => {
    const { env, veroToken } = await isolatedEnv();
    await expectJsonError(
      await post(
        env,
        Array.from({ length: 51 }, (_, i) => track(i)),
      ),
      413,
    );
    expect(await vero.calls(veroToken)).toEqual([]);
  });
});

describe("the order of one user's jobs", () => {
  it("numbers the jobs of a request in order, under one enqueue time", async () => {
    const sent: VeroJob[] = [];
    const recorder = {
      send: async () => {},
      sendBatch: async (messages: Iterable<{ body: unknown }>) => {
        for (const message of messages) sent.push(message.body as VeroJob);
      },
    };
    const { env } = await isolatedEnv({}, { queued: true });
    const response = await post({ ...env, VERO_QUEUE: recorder as unknown as Queue }, [0, 1, 2].map(track));
    expect(response.status).toBe(200);
    expect(sent.map((job) => job.seq)).toEqual([0, 1, 2]);
    expect(new Set(sent.map((job) => job.at)).size).toBe(1);
  });

  it("runs a tags add before the tags remove that followed it in the request, though the add came back behind it", async () => {
    const { env, veroToken } = await isolatedEnv();
    const at = Date.now();
    const tags = (seq: number, change: "add" | "remove"): VeroJob => ({
      v: 1,
      kind: "vero",
      messageId: `tags-${seq}`,
      user: "eve",
      requests: [{ method: "PUT", path: "/users/tags/edit", body: { id: "eve", [change]: ["vip"] } }],
      at,
      seq,
    });
    // The add failed once and was retried: it now arrives after the remove.
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [
        { id: "remove", body: tags(1, "remove") },
        { id: "add", body: tags(0, "add"), attempts: 2 },
      ],
      env,
    );
    expect(fate.acked).toEqual(["add", "remove"]);
    const bodies = (await vero.accepted(veroToken)).map((call) => call.body as { add?: string[]; remove?: string[] });
    expect(bodies.map((body) => (body.add ? "add" : "remove"))).toEqual(["add", "remove"]);
  });
});
