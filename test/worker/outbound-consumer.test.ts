/**
 * The Vero queue's consumer: worker.queue on batches made with
 * createMessageBatch, real HTTP to the Vero stand-in (a fresh tenant per
 * test, failures switched on per tenant).
 */
import { describe, expect, it } from "vitest";
import { DEV_SECRETS } from "../../dev/dev-settings.ts";
import { getDeadLetter } from "../../src/delivery/dead-letters.ts";
import { QUEUE_NAMES } from "../../src/delivery/settlement.ts";
import type { VeroJob } from "../../src/outbound/job.ts";
import { isolatedEnv, vero } from "./helpers.ts";
import { runBatch, summary, trackJob, unique, veroJob } from "./queue-helpers.ts";

const ledger = (env: { LEDGER?: D1Database }) => env.LEDGER as D1Database;

function identifyWithTags(user: string, messageId = unique("m")): VeroJob {
  return veroJob(
    user,
    [
      { method: "POST", path: "/users/track", body: { id: user, email: `${user}@example.com`, data: {} } },
      { method: "PUT", path: "/users/tags/edit", body: { id: user, add: ["vip"] } },
    ],
    messageId,
  );
}

describe("the Vero queue consumer", () => {
  it("runs each job's calls in order, keeps each user's jobs in batch order, and acks them", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const jobs = [
      identifyWithTags("ann"),
      trackJob("bob", "b1"),
      trackJob("ann", "a1"),
      trackJob("bob", "b2"),
      trackJob("ann", "a2"),
    ];
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      jobs.map((job, index) => ({ id: `j${index}`, body: job })),
      env,
    );
    expect(fate).toEqual({ acked: ["j0", "j1", "j2", "j3", "j4"], retried: {} });
    const calls = summary(await vero.calls(veroToken));
    expect(calls.filter((call) => call.includes(" ann"))).toEqual([
      "200 /users/track ann",
      "200 /users/tags/edit ann",
      "200 /events/track ann a1",
      "200 /events/track ann a2",
    ]);
    expect(calls.filter((call) => call.includes(" bob"))).toEqual([
      "200 /events/track bob b1",
      "200 /events/track bob b2",
    ]);
  });

  it("puts a retried job back in front of the same user's newer jobs, by the time the route enqueued them", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [
        { id: "newer", body: { ...trackJob("kim", "k2"), at: 2_000 } },
        { id: "retried-older", body: { ...trackJob("kim", "k1"), at: 1_000 }, attempts: 3 },
      ],
      env,
    );
    expect(fate.acked).toEqual(["newer", "retried-older"]);
    expect(summary(await vero.calls(veroToken))).toEqual(["200 /events/track kim k1", "200 /events/track kim k2"]);
  });

  it("retries a failed job with growing delays, and holds the same user's later jobs back behind it", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    await vero.fail(veroToken, { status: 500, times: 1 });
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [
        { id: "fails", body: trackJob("cy", "c1"), attempts: 3 },
        { id: "behind", body: trackJob("cy", "c2"), attempts: 1 },
      ],
      env,
    );
    // 5 s doubled per attempt: the third attempt waits 20 s, and the job behind it at least as long.
    expect(fate).toEqual({ acked: [], retried: { fails: 20, behind: 20 } });
    expect(summary(await vero.calls(veroToken))).toEqual(["500 /events/track cy c1"]);
  });

  it("lets other users' jobs go on while one user's job is retried", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    await vero.fail(veroToken, { status: 429, times: 1, retryAfter: 30 });
    const fate = await runBatch(QUEUE_NAMES.vero, [{ id: "limited", body: trackJob("dee", "d1") }], env);
    expect(fate.retried).toEqual({ limited: 30 });
    const next = await runBatch(
      QUEUE_NAMES.vero,
      [
        { id: "d-again", body: trackJob("dee", "d1"), attempts: 2 },
        { id: "e", body: trackJob("eve", "e1") },
      ],
      env,
    );
    expect(next).toEqual({ acked: ["d-again", "e"], retried: {} });
  });

  it("dead-letters a job Vero refuses for good, with Vero's reason, and goes on with the user's next job", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    await vero.fail(veroToken, { status: 400, times: 1 });
    const refused = trackJob("fay", "f1");
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [
        { id: "refused-1", body: refused },
        { id: "next-1", body: trackJob("fay", "f2") },
      ],
      env,
    );
    expect(fate).toEqual({ acked: ["next-1", "refused-1"], retried: {} });
    expect(summary(await vero.calls(veroToken))).toEqual(["400 /events/track fay f1", "200 /events/track fay f2"]);
    expect(await getDeadLetter(ledger(env), "refused-1")).toMatchObject({
      source: "vero",
      permanent: true,
      body: refused,
      reason: expect.stringMatching(/^Vero answered 400 to POST \/events\/track/),
    });
  });

  it("without LEDGER, after a partial success, acks the job and continues only with the calls left", async () => {
    const { env, veroToken } = await isolatedEnv(
      { QUEUE_RETRY_BASE_SECONDS: "1", LEDGER: undefined },
      { queued: true },
    );
    // The identify goes through, the tags edit fails once.
    await vero.fail(veroToken, { status: 503, times: 1, after: 1 });
    const user = unique("gil");
    const job = identifyWithTags(user);
    const fate = await runBatch(QUEUE_NAMES.vero, [{ id: "partial", body: job }], env);
    expect(fate).toEqual({ acked: ["partial"], retried: {} });
    expect(summary(await vero.calls(veroToken))).toEqual([`200 /users/track ${user}`, `503 /users/tags/edit ${user}`]);
    // The continuation runs in the Worker's own consumer, with the Worker's configured (development) credential.
    const calls = await vero.waitFor(
      DEV_SECRETS.VERO_AUTH_TOKEN,
      (all) => summary(all).includes(`200 /users/tags/edit ${user}`),
      { timeoutMs: 20_000 },
    );
    expect(summary(calls).filter((call) => call.includes(user))).toEqual([`200 /users/tags/edit ${user}`]);
  }, 30_000);

  it("dead-letters a malformed job without calling Vero", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [
        {
          id: "odd",
          body: { v: 1, kind: "vero", messageId: "x", user: "u", requests: [{ method: "GET", path: "/" }] },
        },
      ],
      env,
    );
    expect(fate.acked).toEqual(["odd"]);
    expect(await vero.calls(veroToken)).toEqual([]);
    expect(await getDeadLetter(ledger(env), "odd")).toMatchObject({
      reason: expect.stringMatching(/^malformed Vero queue message/),
    });
  });

  it("keeps jobs (retries) while outbound is not configured", async () => {
    const { env } = await isolatedEnv({ VERO_AUTH_TOKEN: "", VERO_TRACKING_API_KEY: "" });
    const fate = await runBatch(QUEUE_NAMES.vero, [{ id: "waits", body: trackJob("jo", "j1") }], env);
    expect(fate).toEqual({ acked: [], retried: { waits: 5 } });
  });
});
