/**
 * A user deletion (GDPR) is done only when Vero confirmed it, or when
 * Vero's own "user not found" follows a try that got no answer. Any other
 * 404 (a wrong VERO_API_URL) is kept and retried by the user's mailbox,
 * never let go. The queue's message is acked once the mailbox holds it.
 */
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { VERO_USER_NOT_FOUND } from "../../../dev/stand-ins/types.ts";
import { QUEUE_NAMES } from "../../../src/delivery/settlement.ts";
import type { VeroJob } from "../../../src/outbound/job.ts";
import { isolatedEnv, vero } from "../helpers/env.ts";
import { deadLetterFor, runBatch } from "../helpers/queue.ts";

const ledger = (env: { LEDGER?: D1Database }) => env.LEDGER as D1Database;
const unique = (prefix: string) => `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

const deleteJob = (user: string): VeroJob => ({
  v: 2,
  kind: "vero",
  messageId: unique("del"),
  user,
  requests: [{ method: "POST", path: "/users/delete", body: { id: user } }],
});

const deletes = async (token: string) =>
  (await vero.calls(token)).filter((call) => call.path === "/api/v2/users/delete").map((call) => call.status);

afterEach(() => vi.restoreAllMocks());

describe("deleting a user in Vero", () => {
  it("lets a delete go once Vero confirmed it", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const job = deleteJob("amy");
    const fate = await runBatch(QUEUE_NAMES.vero, [{ id: "confirmed", body: job }], env);
    expect(fate).toEqual({ acked: ["confirmed"], retried: {} });
    expect(await deletes(veroToken)).toEqual([200]);
    expect(await deadLetterFor(ledger(env), job.messageId)).toBeUndefined();
  });

  it("lets a delete whose answer was lost go once Vero says the user no longer exists", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    // The stand-in deletes the user, then closes the connection instead of answering.
    await vero.fail(veroToken, { drop: 1 });
    const job = deleteJob("bob");
    const fate = await runBatch(QUEUE_NAMES.vero, [{ id: "lost-answer", body: job }], env);
    expect(fate).toEqual({ acked: ["lost-answer"], retried: {} });
    expect(await deletes(veroToken)).toEqual([0, 404]);
    expect(await deadLetterFor(ledger(env), job.messageId)).toBeUndefined();
  });

  it("keeps Vero's 'user not found' as a dead letter when no earlier try went unanswered", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    await runBatch(QUEUE_NAMES.vero, [{ id: "first", body: deleteJob("cat") }], env);
    const again = deleteJob("cat");
    const fate = await runBatch(QUEUE_NAMES.vero, [{ id: "again", body: again, attempts: 2 }], env);
    expect(await deletes(veroToken)).toEqual([200, 404]);
    expect(fate.acked).toEqual(["again"]);
    expect(await deadLetterFor(ledger(env), again.messageId)).toMatchObject({
      permanent: true,
      reason: `Vero answered 404 to POST /users/delete: ${VERO_USER_NOT_FOUND}`,
    });
  });

  it("retries, never lets go, a delete answered by a 404 that is not Vero's, and says VERO_API_URL is wrong", async () => {
    const warnings = vi.spyOn(console, "warn");
    const wrongUrls = [
      `${inject("veroOrigin")}/api/v1`, // a path Vero does not serve: JSON of another message
      `${inject("segmentOrigin")}/v1`, // another service: JSON of another shape
    ];
    for (const [index, url] of wrongUrls.entries()) {
      const { env } = await isolatedEnv({ VERO_API_URL: url }, { ledger: true });
      const job = deleteJob("dan");
      const fate = await runBatch(QUEUE_NAMES.vero, [{ id: `wrong-url-${index}`, body: job }], env);
      expect(fate.acked, url).toEqual([`wrong-url-${index}`]);
      expect(await deadLetterFor(ledger(env), job.messageId)).toBeUndefined();
    }
    const logged = warnings.mock.calls.map(([line]) => JSON.parse(String(line)) as { msg: string; reason?: string });
    const retries = logged.filter((line) => line.msg === "delivery failed, will retry");
    expect(retries).toHaveLength(2);
    for (const line of retries) expect(line.reason).toMatch(/^configuration error: .* check VERO_API_URL/);
  });
});
