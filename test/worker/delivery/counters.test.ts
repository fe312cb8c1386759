/**
 * The hourly counters: the mailboxes count each Vero call's outcome in
 * their own storage, report the counts to a counter shard after each
 * drain, and the shards write them to D1 a few seconds later. Alone in
 * its file, so that no other test's counts arrive meanwhile.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import {
  COUNTER_SHARDS,
  type CounterShard,
  type CountReport,
  counterShardFor,
} from "../../../src/delivery/counter-shard.ts";
import { bucketOf, hourOf } from "../../../src/delivery/counters.ts";
import { QUEUE_NAMES } from "../../../src/delivery/settlement.ts";
import { callWorker, isolatedEnv, vero } from "../helpers/env.ts";
import { runBatch, trackJob, unique } from "../helpers/queue.ts";

const trackWithTags = (user: string) => {
  const job = trackJob(user, "Upgraded");
  const tags = { method: "PUT" as const, path: "/users/tags/edit", body: { id: user, add: ["pro"] } };
  return { ...job, requests: [...job.requests, tags] };
};

describe("counters", () => {
  it("counts each Vero call's outcome per hour, exactly, readable at GET /admin/counters", {
    timeout: 30_000,
  }, async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const since = hourOf(new Date());
    const read = async () => {
      const response = await callWorker(
        new Request(`http://bridge/admin/counters?since=${since}`, {
          headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` },
        }),
        env,
      );
      const body = (await response.json()) as { counters: { name: string; outcome: string; count: number }[] };
      const count = (name: string, outcome: string) =>
        body.counters.find((row) => row.name === name && row.outcome === outcome)?.count ?? 0;
      return {
        trackDelivered: count("POST /events/track", "delivered"),
        tagsRetried: count("PUT /users/tags/edit", "retried"),
        tagsDelivered: count("PUT /users/tags/edit", "delivered"),
      };
    };
    const before = await read();
    await vero.fail(veroToken, { status: 503, times: 1, after: 1 });
    await runBatch(QUEUE_NAMES.vero, [{ id: "c1", body: trackWithTags(unique("hal")) }], env);
    // The counter shards write a few seconds after the mailbox reports: wait for every count of this job, so that
    // none arrives during the next test.
    let after = await read();
    for (let tries = 0; tries < 200 && after.tagsDelivered === before.tagsDelivered; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      after = await read();
    }
    expect(after.trackDelivered - before.trackDelivered).toBe(1);
    expect(after.tagsRetried - before.tagsRetried).toBe(1);
    expect(after.tagsDelivered - before.tagsDelivered).toBe(1);
  });

  it("files a mailbox's counts under the 5-minute bucket of the call, which the alerts' 15-minute failure rate reads", {
    timeout: 30_000,
  }, async () => {
    const { env } = await isolatedEnv({}, { ledger: true });
    const start = new Date();
    // The file's D1 keeps the earlier test's counts, perhaps in the bucket before: only what this job adds is read.
    const totals = () =>
      (env.LEDGER as D1Database)
        .prepare(
          "SELECT bucket, sum(count) AS n FROM counters WHERE direction = 'outbound' AND bucket >= ?1 GROUP BY bucket",
        )
        .bind(hourOf(start))
        .all<{ bucket: string; n: number }>()
        .then(({ results }) => new Map(results.map((row) => [row.bucket, row.n])));
    const before = await totals();
    await runBatch(QUEUE_NAMES.vero, [{ id: "b1", body: trackJob(unique("bucket"), "Bucketed") }], env);
    const buckets = () =>
      totals().then((now) => [...now].filter(([bucket, n]) => n > (before.get(bucket) ?? 0)).map(([bucket]) => bucket));
    await vi.waitFor(async () => expect(await buckets()).not.toEqual([]), { timeout: 20_000, interval: 200 });
    const end = new Date();
    for (const hour of await buckets()) {
      expect(
        hour >= bucketOf(start) && hour <= bucketOf(end),
        `${hour} outside ${bucketOf(start)}..${bucketOf(end)}`,
      ).toBe(true);
    }
  });
});

describe("a counter shard", () => {
  it("adds a report once, even when the mailbox sends it again after a lost answer, and writes it in one statement", async () => {
    const { env } = await isolatedEnv({}, { ledger: true });
    const from = unique("mailbox");
    const hour = hourOf(new Date());
    const name = unique("POST /test");
    const report: CountReport = { from, seq: 7, rows: [[hour, "outbound", name, "delivered", 3]] };
    const shard = counterShardFor(env, from);
    await shard.add(report);
    await shard.add(report);
    await shard.add({ ...report, seq: 8, rows: [[hour, "outbound", name, "delivered", 2]] });
    await runInDurableObject(shard, (instance: CounterShard) => instance.alarm());
    const row = await (env.LEDGER as D1Database)
      .prepare("SELECT count FROM counters WHERE name = ?1 AND outcome = 'delivered'")
      .bind(name)
      .first<{ count: number }>();
    expect(row?.count).toBe(5);
    expect(COUNTER_SHARDS).toBeGreaterThan(0);
  });
});
