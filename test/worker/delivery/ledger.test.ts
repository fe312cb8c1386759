/**
 * The ledger of Vero calls (each mailbox's own) and D1's (dead letters,
 * counters): through the routes and the Vero queue consumer against the
 * Vero stand-in, a re-sent event reaches Vero once, a job resumes after its
 * recorded calls, re-driven dead letters make only the calls missing, the
 * counters are exact, the cron prunes, and a consumer batch of new jobs
 * costs D1 nothing.
 */
import { createScheduledController } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { hourOf } from "../../../src/delivery/counters.ts";
import { getDeadLetter, storeDeadLetters } from "../../../src/delivery/dead-letters.ts";
import { QUEUE_NAMES } from "../../../src/delivery/settlement.ts";
import worker from "../../../src/index.ts";
import type { VeroJob } from "../../../src/outbound/job.ts";
import type { Env } from "../../../src/shared/env.ts";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";
import { callWorker, isolatedEnv, postApi, vero } from "../helpers/env.ts";
import { capturingLogs } from "../helpers/fuzz.ts";
import { deadLetterFor, runBatch, summary, trackJob, unique } from "../helpers/queue.ts";

const SECRET = "dev-segment-shared-secret-for-local-use";

async function postSegment(env: Env, body: unknown): Promise<Response> {
  const raw = JSON.stringify(body);
  const signature = hmacSha1Hex(SECRET, raw);
  return callWorker(
    new Request("http://bridge/segment", { method: "POST", body: raw, headers: { "X-Signature": signature } }),
    env,
  );
}

/** A queue binding that keeps what the routes send, for the test to hand to the consumer as batches. */
function capturingQueue() {
  const sent: unknown[] = [];
  const queue = {
    send: async (body: unknown) => {
      sent.push(body);
    },
    sendBatch: async (messages: Iterable<{ body: unknown }>) => {
      for (const { body } of messages) sent.push(body);
    },
  } as unknown as Queue<unknown>;
  return { queue, sent };
}

/** The acceptance scenario's sends: three times to /segment, once to /v1/track, then inside a /v1/batch with `fresh`. */
async function sendAgainAndAgain(env: Env, again: object, fresh: object, status: number): Promise<Response> {
  for (let i = 0; i < 3; i++) expect((await postSegment(env, again)).status).toBe(status);
  // /v1/* answers 200 in queue mode too, as Segment's API does.
  expect((await postApi(env, "track", again)).status).toBe(200);
  const batch = await postApi(env, "batch", { batch: [again, fresh] });
  expect(batch.status).toBe(200);
  return batch;
}

/** Re-drives one dead letter through the admin route, and returns what it sent to the Vero queue. */
async function redrive(env: Env, id: string): Promise<unknown> {
  const { queue, sent } = capturingQueue();
  const response = await callWorker(
    new Request(`http://bridge/admin/dead-letters/${id}/redrive`, {
      method: "POST",
      headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` },
    }),
    { ...env, VERO_QUEUE: queue },
  );
  expect(await response.json()).toEqual({ ok: true, redriven: id });
  return sent[0];
}

const trackEvent = (messageId: string, userId: string, event = "Signed Up") => ({
  type: "track",
  messageId,
  userId,
  event,
  properties: { plan: "pro" },
  timestamp: "2026-11-28T12:00:00.000Z",
});

function trackWithTags(user: string, messageId = unique("m")): VeroJob {
  const job = trackJob(user, "Upgraded", messageId);
  const tags = { method: "PUT" as const, path: "/users/tags/edit", body: { id: user, add: ["pro"] } };
  return { ...job, requests: [...job.requests, tags] };
}

describe("the same event sent again reaches Vero once", () => {
  it("three times to /segment, once via /v1/track and inside a /v1/batch: one events/track, and one for the new event (queued)", async () => {
    const { env, veroToken } = await isolatedEnv({}, { queued: true });
    const { queue, sent } = capturingQueue();
    const queued = { ...env, VERO_QUEUE: queue };
    const user = unique("ann");
    const again = trackEvent(unique("again"), user);
    const fresh = trackEvent(unique("fresh"), user, "Upgraded");
    await sendAgainAndAgain(queued, again, fresh, 202);
    expect(sent).toHaveLength(6);

    // The three /segment copies in one batch, the rest in the next: within a batch and across batches.
    const first = await runBatch(
      QUEUE_NAMES.vero,
      sent.slice(0, 3).map((body, index) => ({ id: `a${index}`, body })),
      env,
    );
    const second = await runBatch(
      QUEUE_NAMES.vero,
      sent.slice(3).map((body, index) => ({ id: `b${index}`, body })),
      env,
    );
    expect([first.retried, second.retried]).toEqual([{}, {}]);
    expect([...first.acked, ...second.acked]).toHaveLength(6);
    expect(summary(await vero.calls(veroToken))).toEqual([
      `200 /events/track ${user} Signed Up`,
      `200 /events/track ${user} Upgraded`,
    ]);
  });

  it("the same, handed to the mailboxes without a queue: one events/track, and one for the new event", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const user = unique("bo");
    const again = trackEvent(unique("again"), user);
    const fresh = trackEvent(unique("fresh"), user, "Upgraded");
    const batch = await sendAgainAndAgain(env, again, fresh, 202);
    expect(await batch.json()).toMatchObject({
      results: [
        { messageId: again.messageId, outcome: "queued" },
        { messageId: fresh.messageId, outcome: "queued" },
      ],
    });
    expect(summary(await vero.calls(veroToken))).toEqual([
      `200 /events/track ${user} Signed Up`,
      `200 /events/track ${user} Upgraded`,
    ]);
  });

  it("two different messageIds with identical content are both delivered", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const user = unique("cy");
    const response = await postApi(env, "batch", {
      batch: [trackEvent(unique("one"), user), trackEvent(unique("two"), user)],
    });
    expect(response.status).toBe(200);
    expect(summary(await vero.calls(veroToken))).toEqual([
      `200 /events/track ${user} Signed Up`,
      `200 /events/track ${user} Signed Up`,
    ]);
  });

  it("without LEDGER, still sends a re-sent event once: the mailbox keeps the ledger (as /health says)", async () => {
    const { env, veroToken } = await isolatedEnv();
    const user = unique("dee");
    const again = trackEvent(unique("again"), user);
    await postSegment(env, again);
    await postSegment(env, again);
    expect(summary(await vero.calls(veroToken))).toHaveLength(1);
    expect(await (await callWorker(new Request("http://bridge/health"), env)).json()).toMatchObject({ dedup: true });
  });
});

describe("a job resumes after its recorded calls", () => {
  it("a track with tags whose tags call fails twice: the event is recorded once, the tags applied once", async () => {
    const { env, veroToken } = await isolatedEnv({ QUEUE_RETRY_BASE_SECONDS: "1" }, { ledger: true });
    await vero.fail(veroToken, { status: 503, times: 2, after: 1 });
    const user = unique("eve");
    const job = trackWithTags(user);
    expect(await runBatch(QUEUE_NAMES.vero, [{ id: "tt", body: job }], env)).toEqual({ acked: ["tt"], retried: {} });
    // The same job again (a redelivery): the mailbox's ledger holds both calls.
    await runBatch(QUEUE_NAMES.vero, [{ id: "tt", body: job, attempts: 2 }], env);
    const calls = await vero.waitFor(veroToken, (all) => all.length === 4);
    expect(summary(calls)).toEqual([
      `200 /events/track ${user} Upgraded`,
      `503 /users/tags/edit ${user}`,
      `503 /users/tags/edit ${user}`,
      `200 /users/tags/edit ${user}`,
    ]);
  });

  it("a re-driven dead letter whose first call the ledger holds makes only the missing one", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    // The tags call is refused for good once: the job is dead-lettered after its events/track went through.
    await vero.fail(veroToken, { status: 400, times: 1, after: 1 });
    const user = unique("fay");
    const id = unique("dl");
    const job = trackWithTags(user);
    expect(await runBatch(QUEUE_NAMES.vero, [{ id, body: job }], env)).toEqual({ acked: [id], retried: {} });
    const letter = await deadLetterFor(env.LEDGER as D1Database, job.messageId);
    const body = await redrive(env, letter?.id ?? "none");
    expect(await runBatch(QUEUE_NAMES.vero, [{ id: `${id}-again`, body }], env)).toMatchObject({
      acked: [`${id}-again`],
    });
    expect(summary(await vero.calls(veroToken))).toEqual([
      `200 /events/track ${user} Upgraded`,
      `400 /users/tags/edit ${user}`,
      `200 /users/tags/edit ${user}`,
    ]);
  });

  it("a re-driven dead letter whose calls the ledger does not hold makes them all", async () => {
    const { env, veroToken } = await isolatedEnv({}, { ledger: true });
    const user = unique("gil");
    const id = unique("dl");
    await storeDeadLetters(env.LEDGER as D1Database, [
      {
        id,
        source: "vero",
        body: trackWithTags(user),
        reason: "retries exhausted after 25 attempts: Vero answered 503",
        permanent: false,
        attempts: 25,
        failedAt: new Date().toISOString(),
      },
    ]);
    const body = await redrive(env, id);
    await runBatch(QUEUE_NAMES.vero, [{ id: `${id}-again`, body }], env);
    expect(summary(await vero.calls(veroToken))).toEqual([
      `200 /events/track ${user} Upgraded`,
      `200 /users/tags/edit ${user}`,
    ]);
  });
});

/** A D1 binding that counts its round trips: each batch(), and each statement run on its own. */
function countingLedger(db: D1Database) {
  let trips = 0;
  const statement = (inner: D1PreparedStatement): D1PreparedStatement =>
    new Proxy(inner, {
      get(target, key) {
        if (key === "bind") return (...values: unknown[]) => statement(target.bind(...values));
        const value = Reflect.get(target, key, target);
        if (typeof value !== "function") return value;
        if (["all", "run", "first", "raw"].includes(String(key))) trips++;
        return value.bind(target);
      },
    });
  const ledger = {
    prepare: (sql: string) => statement(db.prepare(sql)),
    // The statements of a batch reach D1 unwrapped: one round trip for all of them.
    batch: (statements: D1PreparedStatement[]) => {
      trips++;
      return db.batch(statements.map((s) => (s as unknown as { valueOf(): D1PreparedStatement }).valueOf()));
    },
    exec: (sql: string) => {
      trips++;
      return db.exec(sql);
    },
  } as unknown as D1Database;
  return { ledger, trips: () => trips };
}

describe("D1's cost per consumer batch", () => {
  it.each([1, 25])("is no statement for a batch of %i new jobs, and the batch log line says so", async (size) => {
    // Every success line written: a clean batch's line is sampled like the others.
    const { env, veroToken } = await isolatedEnv({ LOG_SAMPLE_RATE: "1" }, { ledger: true });
    const counting = countingLedger(env.LEDGER as D1Database);
    if (size > 1) await vero.fail(veroToken, { statuses: [400, 503], times: 2 });
    const jobs = Array.from({ length: size }, (_, index) => ({
      id: `q${index}`,
      body: trackWithTags(unique(`u${index}`)),
    }));
    const { lines } = await capturingLogs(() => runBatch(QUEUE_NAMES.vero, jobs, { ...env, LEDGER: counting.ledger }));
    const line = lines
      .map((text) => JSON.parse(text) as Record<string, unknown>)
      .find((log) => log.msg === "vero batch");
    expect(line).toMatchObject({ d1Statements: 0, doRequests: size });
    expect(counting.trips()).toBe(0);
  });

  it("is one query for a batch holding jobs queued before the mailboxes, and the line counts it", async () => {
    const { env } = await isolatedEnv({ LOG_SAMPLE_RATE: "1" }, { ledger: true });
    const counting = countingLedger(env.LEDGER as D1Database);
    const jobs = [1, 2, 3].map((n) => ({ id: `old${n}`, body: { ...trackJob(unique("u"), "x"), v: 1 as const } }));
    const { lines } = await capturingLogs(() => runBatch(QUEUE_NAMES.vero, jobs, { ...env, LEDGER: counting.ledger }));
    const line = lines
      .map((text) => JSON.parse(text) as Record<string, unknown>)
      .find((log) => log.msg === "vero batch");
    expect(line).toMatchObject({ d1Statements: 1, doRequests: 3 });
    expect(counting.trips()).toBe(1);
  });
});

describe("the cron prune", () => {
  it("forgets calls and counters older than the retention, and keeps dead letters", async () => {
    const { env } = await isolatedEnv({}, { ledger: true });
    const db = env.LEDGER as D1Database;
    const now = Date.now();
    const daysAgo = (days: number) => new Date(now - days * 86_400_000).toISOString();
    const [old, recent, letter] = [unique("old"), unique("recent"), unique("letter")];
    await db.batch([
      db.prepare("INSERT INTO vero_calls VALUES (?1, '0 POST /events/track', 200, ?2)").bind(old, daysAgo(8)),
      db.prepare("INSERT INTO vero_calls VALUES (?1, '0 POST /events/track', 200, ?2)").bind(recent, daysAgo(6)),
      db
        .prepare("INSERT INTO counters VALUES (?1, 'outbound', ?2, 'delivered', 3)")
        .bind(hourOf(new Date(daysAgo(8))), old),
    ]);
    await storeDeadLetters(db, [
      { id: letter, source: "vero", body: {}, reason: "old", permanent: true, attempts: 1, failedAt: daysAgo(60) },
    ]);
    await worker.scheduled(createScheduledController({ cron: "17 3 * * *" }), env);
    const calls = await db
      .prepare("SELECT message_id FROM vero_calls WHERE message_id IN (?1, ?2)")
      .bind(old, recent)
      .all<{ message_id: string }>();
    expect(calls.results.map((row) => row.message_id)).toEqual([recent]);
    expect(await db.prepare("SELECT * FROM counters WHERE name = ?1").bind(old).first()).toBeNull();
    expect(await getDeadLetter(db, letter)).toBeDefined();
  });

  it("keeps them for LEDGER_RETENTION_DAYS when set, and never less than 7 days", async () => {
    const { env } = await isolatedEnv({ LEDGER_RETENTION_DAYS: "30" }, { ledger: true });
    const db = env.LEDGER as D1Database;
    const insert = (id: string, days: number) =>
      db
        .prepare("INSERT INTO vero_calls VALUES (?1, '0 POST /events/track', 200, ?2)")
        .bind(id, new Date(Date.now() - days * 86_400_000).toISOString())
        .run();
    const held = async (id: string) =>
      (await db.prepare("SELECT message_id FROM vero_calls WHERE message_id = ?1").bind(id).first()) !== null;
    const [twentyDays, fiveDays] = [unique("twenty"), unique("five")];
    await insert(twentyDays, 20);
    await insert(fiveDays, 5);
    const prune = async (extra: Partial<Env>) => {
      await worker.scheduled(createScheduledController(), { ...env, ...extra });
    };
    await prune({});
    expect([await held(twentyDays), await held(fiveDays)]).toEqual([true, true]);
    // 1 day is refused (logged) and the 7-day minimum applies.
    await prune({ LEDGER_RETENTION_DAYS: "1" });
    expect([await held(twentyDays), await held(fiveDays)]).toEqual([false, true]);
  });
});
