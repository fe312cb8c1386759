/** wrangler.toml, read as wrangler reads it, agrees with the queue names and retry budget the code relies on, in every environment. */

import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";
import { ALERT_CRON } from "../../src/admin/alerts/schedule.ts";
import { DEFAULT_RETRY_POLICY, QUEUE_MAX_RETRIES_LIMIT } from "../../src/delivery/retry-schedule.ts";
import { MAX_RETRIES } from "../../src/shared/queue-limits.ts";
import { QUEUE_NAMES, queueNames, queueRole } from "../../src/shared/queue-names.ts";

const configPath = fileURLToPath(new URL("../../wrangler.toml", import.meta.url));
const readConfig = (env?: string) => unstable_readConfig({ config: configPath, env });
interface Consumer {
  queue: string;
  max_batch_size?: number;
  max_batch_timeout?: number;
  max_retries?: number;
  retry_delay?: number;
  dead_letter_queue?: string;
  max_concurrency?: number;
}

// The top level is production; every named environment is the same Worker under its own names.
const environments = [
  { env: undefined, name: "production" },
  { env: "staging", name: "staging" },
];

describe.each(environments)("wrangler.toml, $name", ({ env }) => {
  const config = readConfig(env);
  const names = queueNames(config.name ?? "");
  const consumers: Consumer[] = config.queues.consumers ?? [];
  const consumer = (queue: string) => consumers.find((entry) => entry.queue === queue);

  it("queues inbound (SEGMENT_QUEUE) and hands outbound straight to the mailboxes (no VERO_QUEUE), the Vero queue bound only for requests too large for one hand-over", () => {
    expect(config.queues.producers).toEqual([
      expect.objectContaining({ binding: "SEGMENT_QUEUE", queue: names.segment }),
      expect.objectContaining({ binding: "VERO_OVERFLOW_QUEUE", queue: names.vero }),
    ]);
  });

  // The Vero queue keeps its consumer: what an earlier version queued is still delivered after an upgrade.
  it("consumes its own four queues, each of which the Worker gives a consumer, and nothing else", () => {
    expect(consumers.map((entry) => entry.queue).sort()).toEqual(Object.values(names).sort());
    for (const entry of consumers) expect(queueRole(entry.queue), entry.queue).toBeDefined();
  });

  it("gives the main queues the retry budget and dead-letter queues the code expects", () => {
    expect(consumer(names.segment)).toMatchObject({
      max_retries: MAX_RETRIES,
      dead_letter_queue: names.segmentDeadLetters,
      max_batch_size: 100,
    });
    expect(consumer(names.vero)).toMatchObject({
      max_retries: MAX_RETRIES,
      dead_letter_queue: names.veroDeadLetters,
    });
    // The mailboxes hold each user's order: batches run side by side.
    expect(consumer(names.vero)?.max_concurrency).toBeUndefined();
  });

  it("lets the dead-letter queues retry across the whole default retention", () => {
    for (const name of [names.segmentDeadLetters, names.veroDeadLetters]) {
      const entry = consumer(name) as { max_retries: number; retry_delay: number };
      expect(entry.max_retries).toBe(QUEUE_MAX_RETRIES_LIMIT);
      expect(entry.max_retries * entry.retry_delay).toBeGreaterThanOrEqual(DEFAULT_RETRY_POLICY.retentionSeconds);
    }
  });

  it("uploads source maps with the minified code, keeps every invocation's lines (the bridge samples its own) without Cloudflare's invocation logs, and says whether it traces", () => {
    expect(config.minify).toBe(true);
    expect(config.upload_source_maps).toBe(true);
    expect(config.observability).toMatchObject({
      enabled: true,
      head_sampling_rate: 1,
      // The webhook's ?token= stays out of Cloudflare's invocation logs.
      redact_query_string: true,
      logs: { enabled: true, head_sampling_rate: 1, invocation_logs: false },
      traces: { enabled: expect.any(Boolean) },
    });
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

  it("binds the ledger by name (wrangler deploy finds or creates it), with its migrations, prunes it by cron, and keeps no KV dead-letter store", () => {
    expect(config.d1_databases).toEqual([
      {
        binding: "LEDGER",
        database_name: `${config.name}-ledger`,
        migrations_dir: "migrations",
      },
    ]);
    // The daily prune, and the alerts' check, whose schedule src/admin/alerts/run.ts dispatches on.
    expect(config.triggers?.crons).toEqual(["17 3 * * *", ALERT_CRON]);
    expect(config.kv_namespaces ?? []).toEqual([]);
  });
});

describe("wrangler.toml's environments", () => {
  const production = readConfig();
  const staging = readConfig("staging");

  it("names production's queues as the code's defaults do", () => {
    expect(production.name).toBe("vero-segment-bridge");
    expect(queueNames(production.name ?? "")).toEqual(QUEUE_NAMES);
  });

  it("gives staging its own Worker, queues and database", () => {
    expect(staging.name).toBe("vero-segment-bridge-staging");
    const shared = new Set(
      [...production.queues.consumers, ...production.d1_databases].map((entry) =>
        "queue" in entry ? entry.queue : entry.database_name,
      ),
    );
    for (const entry of [...staging.queues.consumers, ...staging.d1_databases])
      expect(shared.has("queue" in entry ? entry.queue : (entry.database_name ?? ""))).toBe(false);
  });

  it("configures staging as production, but for the names and its own sign-in limiter namespace", () => {
    const renamed = (config: ReturnType<typeof readConfig>) =>
      JSON.parse(
        JSON.stringify({
          ...pick(config),
          name: undefined,
          ratelimits: config.ratelimits?.map((limit: { namespace_id?: string }) => ({
            ...limit,
            namespace_id: undefined,
          })),
        }).replaceAll(`${config.name}-`, "NAME-"),
      );
    expect(renamed(staging)).toEqual(renamed(production));
    // A namespace is the account's: staging counts its sign-in attempts apart from production's.
    expect(staging.ratelimits?.[0]?.namespace_id).not.toBe(production.ratelimits?.[0]?.namespace_id);
  });
});

describe("queueRole", () => {
  it("reads what a queue carries from the end of its name, whatever the prefix", () => {
    expect(queueRole("vero-segment-bridge-segment")).toBe("segment");
    expect(queueRole("any-name-staging-vero")).toBe("vero");
    expect(queueRole("x-segment-dlq")).toBe("segmentDeadLetters");
    expect(queueRole("x-vero-dlq")).toBe("veroDeadLetters");
    expect(queueRole("x-vero-dlq-old")).toBeUndefined();
  });
});

/** What an environment must repeat: vars, bindings and triggers. */
function pick(config: ReturnType<typeof readConfig>) {
  const { name, vars, queues, d1_databases, triggers, durable_objects, ratelimits, kv_namespaces, services } = config;
  return { name, vars, queues, d1_databases, triggers, durable_objects, ratelimits, kv_namespaces, services };
}
