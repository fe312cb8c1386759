/** wrangler.toml, read as wrangler reads it, agrees with the queue names and retry budget the code relies on. */

import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { ALERT_CRON } from "../../src/admin/alerts/schedule.ts";
import { DEFAULT_RETRY_POLICY, QUEUE_MAX_RETRIES_LIMIT } from "../../src/delivery/retry-schedule.ts";
import { MAX_RETRIES, QUEUE_NAMES } from "../../src/shared/queue-names.ts";

const config = unstable_readConfig({ config: fileURLToPath(new URL("../../wrangler.toml", import.meta.url)) });
interface Consumer {
  queue: string;
  max_batch_size?: number;
  max_batch_timeout?: number;
  max_retries?: number;
  retry_delay?: number;
  dead_letter_queue?: string;
  max_concurrency?: number;
}
const consumers: Consumer[] = config.queues.consumers ?? [];
const consumer = (queue: string) => consumers.find((entry) => entry.queue === queue);

describe("wrangler.toml", () => {
  it("binds the two producer queues the routes enqueue to", () => {
    expect(config.queues.producers).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ binding: "SEGMENT_QUEUE", queue: QUEUE_NAMES.segment }),
        expect.objectContaining({ binding: "VERO_QUEUE", queue: QUEUE_NAMES.vero }),
      ]),
    );
  });

  it("consumes all four queues, and nothing else", () => {
    expect(consumers.map((entry) => entry.queue).sort()).toEqual(Object.values(QUEUE_NAMES).sort());
  });

  it("gives the main queues the retry budget and dead-letter queues the code expects", () => {
    expect(consumer(QUEUE_NAMES.segment)).toMatchObject({
      max_retries: MAX_RETRIES,
      dead_letter_queue: QUEUE_NAMES.segmentDeadLetters,
      max_batch_size: 100,
    });
    expect(consumer(QUEUE_NAMES.vero)).toMatchObject({
      max_retries: MAX_RETRIES,
      dead_letter_queue: QUEUE_NAMES.veroDeadLetters,
    });
    // The mailboxes hold each user's order: batches run side by side.
    expect(consumer(QUEUE_NAMES.vero)?.max_concurrency).toBeUndefined();
  });

  it("lets the dead-letter queues retry across the whole default retention", () => {
    for (const name of [QUEUE_NAMES.segmentDeadLetters, QUEUE_NAMES.veroDeadLetters]) {
      const entry = consumer(name) as { max_retries: number; retry_delay: number };
      expect(entry.max_retries).toBe(QUEUE_MAX_RETRIES_LIMIT);
      expect(entry.max_retries * entry.retry_delay).toBeGreaterThanOrEqual(DEFAULT_RETRY_POLICY.retentionSeconds);
    }
  });

  it("sets every consumer setting explicitly (local defaults differ from production's)", () => {
    for (const entry of consumers) {
      expect(entry, entry.queue).toMatchObject({
        max_batch_size: expect.any(Number),
        max_batch_timeout: expect.any(Number),
        max_retries: expect.any(Number),
        retry_delay: expect.any(Number),
      });
    }
  });

  it("binds the ledger with its migrations, prunes it by cron, and keeps no KV dead-letter store", () => {
    expect(config.d1_databases).toEqual([
      expect.objectContaining({ binding: "LEDGER", database_name: expect.any(String), migrations_dir: "migrations" }),
    ]);
    // The daily prune, and the alerts' check, whose schedule src/admin/alerts/run.ts dispatches on.
    expect(config.triggers?.crons).toEqual(["17 3 * * *", ALERT_CRON]);
    expect(config.kv_namespaces ?? []).toEqual([]);
  });
});
