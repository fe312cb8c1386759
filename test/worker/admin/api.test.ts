import { describe, expect, it } from "vitest";
import { type DeadLetter, getDeadLetter, storeDeadLetters } from "../../../src/delivery/dead-letters.ts";
import type { Env } from "../../../src/shared/env.ts";
import { baseEnv, callWorker, expectJsonError, isolatedEnv, vero } from "../helpers/env.ts";
import { trackJob } from "../helpers/queue.ts";

const ADMIN = "admin-token-0123456789abcdef0123456";
const OLD_ADMIN = "old-admin-0123456789abcdef0123456789";
const NEW_ADMIN = "new-admin-0123456789abcdef0123456789";

/** A queue binding that records what is sent: the admin routes only ever `send`. */
function recordingQueue() {
  const sent: unknown[] = [];
  const queue = {
    send: async (body: unknown) => {
      sent.push(body);
    },
    sendBatch: async (messages: { body: unknown }[]) => {
      sent.push(...messages.map((message) => message.body));
    },
  } as unknown as Queue<unknown>;
  return { queue, sent };
}

function letter(id: string, overrides: Partial<DeadLetter> = {}): DeadLetter {
  return {
    id,
    source: "vero",
    body: { kind: "vero", note: id },
    reason: "vero answered 400: id is longer than 255 characters",
    permanent: true,
    attempts: 1,
    failedAt: "2026-11-28T12:00:00.000Z",
    ...overrides,
  };
}

/** The tests share one database, so each uses ids (and reasons, to filter on) of its own. */
const adminEnv = (extra: Partial<Env> = {}): Env => ({ ...baseEnv, ADMIN_TOKEN: ADMIN, ...extra });
const ledger = () => baseEnv.LEDGER as D1Database;
const store = (...letters: DeadLetter[]) => storeDeadLetters(ledger(), letters);
const get = (path: string, token = ADMIN, method = "GET") =>
  new Request(`http://bridge/admin${path}`, { method, headers: { Authorization: `Bearer ${token}` } });

describe("/admin/dead-letters", () => {
  it("returns 503 naming ADMIN_TOKEN when it is not set", async () => {
    const { ADMIN_TOKEN: _, ...env } = adminEnv();
    const body = await expectJsonError(await callWorker(get("/dead-letters"), env), 503);
    expect(body.error.message).toBe("admin is not configured: set ADMIN_TOKEN");
  });

  it("returns 401 without a bearer token, and lists nothing", async () => {
    const response = await callWorker(new Request("http://bridge/admin/dead-letters"), adminEnv());
    expect((await expectJsonError(response, 401)).error.message).toMatch(/Bearer/);
  });

  it("returns 401 when the bearer token is wrong, and deletes nothing", async () => {
    await store(letter("keep-me"));
    await expectJsonError(await callWorker(get("/dead-letters/keep-me", "wrong", "DELETE"), adminEnv()), 401);
    expect(await getDeadLetter(ledger(), "keep-me")).toBeDefined();
  });

  it("accepts both values of a token under rotation", async () => {
    const env = adminEnv({ ADMIN_TOKEN: `${OLD_ADMIN},${NEW_ADMIN}` });
    for (const token of [OLD_ADMIN, NEW_ADMIN]) {
      expect((await callWorker(get("/dead-letters", token), env)).status).toBe(200);
    }
    await expectJsonError(await callWorker(get("/dead-letters", "third"), env), 401);
  });

  it("lists dead letters with their reason, and shows one with its body", async () => {
    await store(letter("listed-1"));
    const list = (await (await callWorker(get("/dead-letters"), adminEnv())).json()) as {
      letters: Omit<DeadLetter, "body">[];
    };
    expect(list.letters).toContainEqual({
      id: "listed-1",
      source: "vero",
      reason: "vero answered 400: id is longer than 255 characters",
      permanent: true,
      attempts: 1,
      failedAt: "2026-11-28T12:00:00.000Z",
    });
    const one = await callWorker(get("/dead-letters/listed-1"), adminEnv());
    expect(await one.json()).toEqual({ ok: true, letter: letter("listed-1") });
  });

  it("returns 404 for an unknown dead letter", async () => {
    await expectJsonError(await callWorker(get("/dead-letters/nope"), adminEnv()), 404);
  });

  it("re-drives a dead letter to the queue it came from, then forgets it", async () => {
    const segment = recordingQueue();
    const vero = recordingQueue();
    await store(letter("redrive-me", { source: "segment", body: { kind: "segment", n: 1 } }));
    const response = await callWorker(
      get("/dead-letters/redrive-me/redrive", ADMIN, "POST"),
      adminEnv({ SEGMENT_QUEUE: segment.queue, VERO_QUEUE: vero.queue }),
    );
    expect(await response.json()).toEqual({ ok: true, redriven: "redrive-me" });
    expect(segment.sent).toEqual([{ kind: "segment", n: 1 }]);
    expect(vero.sent).toEqual([]);
    expect(await getDeadLetter(ledger(), "redrive-me")).toBeUndefined();
  });

  it("without VERO_QUEUE, re-drives a Vero letter into its user's mailbox, and forgets the letter", async () => {
    const { env, veroToken } = await isolatedEnv({ ADMIN_TOKEN: ADMIN }, { ledger: true });
    const user = `redriven-${veroToken}`;
    await store({ ...letter("to-mailbox"), body: trackJob(user, "again") });
    const response = await callWorker(get("/dead-letters/to-mailbox/redrive", ADMIN, "POST"), env);
    expect(await response.json()).toEqual({ ok: true, redriven: "to-mailbox" });
    expect(await getDeadLetter(ledger(), "to-mailbox")).toBeUndefined();
    expect((await vero.accepted(veroToken)).map((call) => call.path)).toEqual(["/api/v2/events/track"]);
  });

  it("keeps a Segment letter and answers 503 when its queue is not bound", async () => {
    await store({ ...letter("no-queue"), source: "segment" });
    const { SEGMENT_QUEUE: _, ...env } = adminEnv();
    const body = await expectJsonError(
      await callWorker(get("/dead-letters/no-queue/redrive", ADMIN, "POST"), env),
      503,
    );
    expect(body.error.message).toBe("SEGMENT_QUEUE is not bound: cannot re-drive no-queue");
    expect(await getDeadLetter(ledger(), "no-queue")).toBeDefined();
  });

  it("deletes a dead letter", async () => {
    await store(letter("delete-me"));
    const response = await callWorker(get("/dead-letters/delete-me", ADMIN, "DELETE"), adminEnv());
    expect(await response.json()).toEqual({ ok: true, deleted: "delete-me" });
    expect(await getDeadLetter(ledger(), "delete-me")).toBeUndefined();
  });

  it("returns 400 on a limit out of range", async () => {
    await expectJsonError(await callWorker(get("/dead-letters?limit=0"), adminEnv()), 400);
  });
});

describe("/admin/dead-letters filters, total and paging", () => {
  /** Letters of this test alone: the reason carries a tag only they have. */
  async function seed(tag: string) {
    await store(
      letter(`${tag}-v1`, { reason: `Vero answered 400 (${tag})`, failedAt: "2026-11-28T10:00:00.000Z" }),
      letter(`${tag}-v2`, {
        reason: `retries exhausted: Vero answered 503 (${tag})`,
        failedAt: "2026-11-28T11:00:00.000Z",
      }),
      letter(`${tag}-s1`, {
        source: "segment",
        reason: `Segment answered 400 (${tag})`,
        failedAt: "2026-11-28T12:00:00.000Z",
      }),
    );
  }
  type Page = { ok: true; letters: { id: string }[]; total: number; cursor?: string };
  const list = async (query: string) =>
    (await (await callWorker(get(`/dead-letters?${query}`), adminEnv())).json()) as Page;
  const tagged = (tag: string) => `reason=${encodeURIComponent(tag.toUpperCase())}`;

  it("filters by source, reason substring (any case) and since, newest first, with the total matching", async () => {
    const tag = `filter-${Date.now()}`;
    await seed(tag);
    const all = await list(tagged(tag));
    expect(all.letters.map((l) => l.id)).toEqual([`${tag}-s1`, `${tag}-v2`, `${tag}-v1`]);
    expect(all.total).toBe(3);
    const vero = await list(`${tagged(tag)}&source=vero`);
    expect([vero.letters.map((l) => l.id), vero.total]).toEqual([[`${tag}-v2`, `${tag}-v1`], 2]);
    const since = await list(`${tagged(tag)}&since=2026-11-28T11:00:00Z`);
    expect([since.letters.map((l) => l.id), since.total]).toEqual([[`${tag}-s1`, `${tag}-v2`], 2]);
    const retries = await list(`reason=${encodeURIComponent(`exhausted: Vero answered 503 (${tag})`)}`);
    expect(retries.letters.map((l) => l.id)).toEqual([`${tag}-v2`]);
  });

  it("pages with a cursor, the total counting every page", async () => {
    const tag = `page-${Date.now()}`;
    await seed(tag);
    const first = await list(`${tagged(tag)}&limit=2`);
    expect([first.letters.map((l) => l.id), first.total]).toEqual([[`${tag}-s1`, `${tag}-v2`], 3]);
    const second = await list(`${tagged(tag)}&limit=2&cursor=${encodeURIComponent(first.cursor ?? "")}`);
    expect(second).toEqual({ ok: true, letters: [expect.objectContaining({ id: `${tag}-v1` })], total: 3 });
  });

  it("re-drives one filtered page, and leaves the rest", async () => {
    const tag = `redrive-${Date.now()}`;
    await seed(tag);
    const segment = recordingQueue();
    const vero = recordingQueue();
    const response = await callWorker(
      get(`/dead-letters/redrive?${tagged(tag)}&source=vero`, ADMIN, "POST"),
      adminEnv({ SEGMENT_QUEUE: segment.queue, VERO_QUEUE: vero.queue }),
    );
    expect(await response.json()).toEqual({ ok: true, redriven: [`${tag}-v2`, `${tag}-v1`] });
    expect(vero.sent).toHaveLength(2);
    expect(segment.sent).toEqual([]);
    expect((await list(tagged(tag))).letters.map((l) => l.id)).toEqual([`${tag}-s1`]);
  });

  it("returns 400 naming a bad filter and what it must be: an unknown source, a since that is not a time, a forged cursor", async () => {
    for (const [query, named] of [
      ["source=kafka", /^source: must be segment or vero$/],
      ["since=yesterday", /^since: must be an ISO date and time such as 2026-11-28T00:00Z$/],
      ["cursor=forged", /^cursor/],
    ] as const) {
      const error = await expectJsonError(await callWorker(get(`/dead-letters?${query}`), adminEnv()), 400);
      expect(error.error.message).toMatch(named);
    }
  });

  it("answers 503 naming LEDGER when the ledger is not bound", async () => {
    const { LEDGER: _, ...env } = adminEnv();
    const error = await expectJsonError(await callWorker(get("/dead-letters"), env), 503);
    expect(error.error.message).toMatch(/LEDGER/);
  });
});

describe("/admin/counters", () => {
  it("returns the hourly counters from `since` to `until`", async () => {
    const db = ledger();
    const name = `POST /events/track ${Date.now()}`;
    await db.batch([
      db.prepare("INSERT INTO counters VALUES ('2026-11-28T10:00:00.000Z', 'outbound', ?1, 'delivered', 5)").bind(name),
      db.prepare("INSERT INTO counters VALUES ('2026-11-28T11:00:00.000Z', 'outbound', ?1, 'retried', 2)").bind(name),
      db.prepare("INSERT INTO counters VALUES ('2026-11-28T12:00:00.000Z', 'outbound', ?1, 'delivered', 1)").bind(name),
    ]);
    const response = await callWorker(
      get("/counters?since=2026-11-28T10:30:00Z&until=2026-11-28T12:00:00Z"),
      adminEnv(),
    );
    const body = (await response.json()) as { ok: true; counters: { name: string }[] };
    expect(body.counters.filter((row) => row.name === name)).toEqual([
      { hour: "2026-11-28T10:00:00.000Z", direction: "outbound", name, outcome: "delivered", count: 5 },
      { hour: "2026-11-28T11:00:00.000Z", direction: "outbound", name, outcome: "retried", count: 2 },
    ]);
  });

  it("returns 400 saying that `since` is required, and what it must be", async () => {
    const error = await expectJsonError(await callWorker(get("/counters"), adminEnv()), 400);
    expect(error.error.message).toBe("since: is required: an ISO date and time such as 2026-11-28T00:00Z");
    const bad = await expectJsonError(await callWorker(get("/counters?since=2026-11-28&until=soon"), adminEnv()), 400);
    expect(bad.error.message).toBe("until: must be an ISO date and time such as 2026-11-28T00:00Z");
  });
});

describe("the Bearer admin API's limit", () => {
  const fromClient = (token: string, client: string) =>
    new Request("http://bridge/admin/dead-letters", {
      headers: { Authorization: `Bearer ${token}`, "CF-Connecting-IP": client },
    });

  it("counts wrong tokens per client (Rate Limiting binding): the 11th in a minute is a 429, the right token still passes", async () => {
    const client = `198.51.100.${Math.floor(Math.random() * 250) + 1}-${crypto.randomUUID()}`;
    for (let attempt = 1; attempt <= 10; attempt++)
      await expectJsonError(await callWorker(fromClient("wrong-token", client), adminEnv()), 401);
    const limited = await expectJsonError(await callWorker(fromClient("wrong-token", client), adminEnv()), 429);
    expect(limited.error.code).toBe("too_many_attempts");
    expect((await callWorker(fromClient(ADMIN, client), adminEnv())).status).toBe(200);
  });
});
