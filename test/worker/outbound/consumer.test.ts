/**
 * The Vero queue's consumer: worker.queue on batches made with
 * createMessageBatch; it hands the jobs to the users' mailboxes, which
 * deliver them over real HTTP to the Vero stand-in (a fresh tenant per
 * test, failures switched on per tenant).
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { getDeadLetter } from "../../../src/delivery/dead-letters.ts";
import { QUEUE_NAMES } from "../../../src/delivery/settlement.ts";
import type { VeroJob } from "../../../src/outbound/job.ts";
import { mailboxConfigFor, mailboxFor } from "../../../src/outbound/mailboxes.ts";
import type { Env } from "../../../src/shared/env.ts";
import { isolatedEnv, vero } from "../helpers/env.ts";
import { deadLetterFor, runBatch, summary, trackJob, unique, veroJob } from "../helpers/queue.ts";

/** The jobs a user's mailbox holds, in delivery order. */
async function heldBy(env: Env, user: string) {
  const ready = mailboxConfigFor(env);
  if (!ready.ok) throw new Error(ready.reason);
  return runInDurableObject(mailboxFor(env, ready.config, user), (_instance, state) =>
    state.storage.sql.exec("SELECT message_id, attempts FROM jobs ORDER BY at, rseq, seq").toArray(),
  );
}

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

  it("acks a job its mailbox holds for a retry, and the mailbox holds the same user's later jobs behind it", async () => {
    // A minute before the retry: the test reads the mailbox well before it.
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "60" }, { ledger: true });
    await vero.fail(veroToken, { status: 500, times: 1 });
    const [fails, behind] = [trackJob("cy", "c1"), trackJob("cy", "c2")];
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [
        { id: "fails", body: fails, attempts: 3 },
        { id: "behind", body: behind, attempts: 1 },
      ],
      env,
    );
    expect(fate).toEqual({ acked: ["behind", "fails"], retried: {} });
    expect(summary(await vero.calls(veroToken))).toEqual(["500 /events/track cy c1"]);
    expect(await heldBy(env, "cy")).toEqual([
      { message_id: fails.messageId, attempts: 1 },
      { message_id: behind.messageId, attempts: 0 },
    ]);
  });

  it("lets other users' jobs go on while one user's job waits for its retry", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    await vero.fail(veroToken, { status: 429, times: 1, retryAfter: 30 });
    await runBatch(QUEUE_NAMES.vero, [{ id: "limited", body: trackJob("dee", "d1") }], env);
    const fate = await runBatch(QUEUE_NAMES.vero, [{ id: "e", body: trackJob("eve", "e1") }], env);
    expect(fate).toEqual({ acked: ["e"], retried: {} });
    expect(summary(await vero.calls(veroToken))).toEqual(["429 /events/track dee d1", "200 /events/track eve e1"]);
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
    expect(await deadLetterFor(ledger(env), refused.messageId)).toMatchObject({
      source: "vero",
      permanent: true,
      body: refused,
      reason: expect.stringMatching(/^Vero answered 400 to POST \/events\/track/),
    });
  });

  it("resumes a job queued before the mailboxes (v: 1) after the calls D1's previous ledger recorded", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const user = unique("gil");
    const job = { ...identifyWithTags(user), v: 1 as const };
    await ledger(env)
      .prepare("INSERT INTO vero_calls (message_id, call, status, done_at) VALUES (?1, '0 POST /users/track', 200, ?2)")
      .bind(job.messageId, new Date().toISOString())
      .run();
    const fate = await runBatch(QUEUE_NAMES.vero, [{ id: "old-shape", body: job, attempts: 2 }], env);
    expect(fate).toEqual({ acked: ["old-shape"], retried: {} });
    expect(summary(await vero.calls(veroToken))).toEqual([`200 /users/tags/edit ${user}`]);
  });

  it("retries a batch of old-shape jobs, never sends them blind, while the previous ledger cannot be read", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const broken = {
      prepare: () => {
        throw new Error("D1_ERROR: the database is unavailable");
      },
    } as unknown as D1Database;
    const fate = await runBatch(
      QUEUE_NAMES.vero,
      [{ id: "old", body: { ...trackJob(unique("u"), "x"), v: 1 as const } }],
      { ...env, LEDGER: broken },
    );
    expect(fate).toEqual({ acked: [], retried: { old: 5 } });
    expect(await vero.calls(veroToken)).toEqual([]);
  });

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
