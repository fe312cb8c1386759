/** The console's sign-in, sessions and paging, as the second hardening review asked: each test names what it guards. */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { startSession } from "../../../src/admin/session.ts";
import { type DeadLetter, storeDeadLetters } from "../../../src/delivery/ledger.ts";
import type { Env } from "../../../src/shared/env.ts";
import {
  ORIGIN,
  sessionCookie as sessionCookieOf,
  signIn as signInForm,
  visit as visitPage,
} from "../helpers/console.ts";
import { baseEnv, callWorker } from "../helpers/env.ts";

const ADMIN = "hardening-admin-token-0123456789abcdef";
const env = (extra: Partial<Env> = {}): Env => ({ ...baseEnv, ADMIN_TOKEN: ADMIN, ...extra });
const ledger = () => baseEnv.LEDGER as D1Database;

const signIn = (token: string, client: string = crypto.randomUUID(), workerEnv = env()) =>
  signInForm(token, workerEnv, { client });
const sessionCookie = (workerEnv = env()) => sessionCookieOf(ADMIN, workerEnv);
const visit = (path: string, cookie: string, workerEnv = env(), init: RequestInit = {}) =>
  visitPage(path, cookie, workerEnv, init);

describe("console sign-in limits", () => {
  it("refuses a sign-in form body over 8 KB with 413, before reading it", async () => {
    const response = await callWorker(
      new Request(`${ORIGIN}/admin/console/sign-in`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", origin: ORIGIN },
        body: `token=${"x".repeat(1_000_000)}`,
      }),
      env(),
    );
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ ok: false, error: { code: "payload_too_large" } });
  });

  it("answers 400, not 500, to a sign-in body that is not the multipart form it claims to be", async () => {
    const response = await callWorker(
      new Request(`${ORIGIN}/admin/console/sign-in`, {
        method: "POST",
        headers: { "content-type": "multipart/form-data; boundary=x", origin: ORIGIN },
        body: "not a multipart body",
      }),
      env(),
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ ok: false, error: { code: "bad_request" } });
  });

  it("limits failed sign-in attempts per client (Rate Limiting binding): the 11th wrong token in a minute is a 429", async () => {
    const client = `client-${crypto.randomUUID()}`;
    for (let attempt = 1; attempt <= 10; attempt++) expect((await signIn("wrong", client)).status).toBe(401);
    const limited = await signIn("wrong", client);
    expect(limited.status).toBe(429);
    expect(limited.headers.get("set-cookie")).toBeNull();
    expect(await limited.text()).toContain("Too many failed sign-in attempts");
  });

  it("never holds back the right token: others' failures from the same address do not lock an operator out", async () => {
    const client = `client-${crypto.randomUUID()}`;
    for (let attempt = 1; attempt <= 11; attempt++) await signIn("wrong", client);
    expect((await signIn("wrong", client)).status).toBe(429);
    expect((await signIn(ADMIN, client)).status).toBe(303);
  });

  it("counts only failures: an operator signing in often is never limited", async () => {
    const client = `client-${crypto.randomUUID()}`;
    for (let attempt = 1; attempt <= 12; attempt++) expect((await signIn(ADMIN, client)).status).toBe(303);
    expect((await signIn("wrong", client)).status).toBe(401);
  });

  it("counts an IPv6 caller by its /64: moving to another address of the network does not reset the count", async () => {
    const prefix = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:1`;
    for (let attempt = 1; attempt <= 10; attempt++)
      expect((await signIn("wrong", `${prefix}::${attempt.toString(16)}`)).status).toBe(401);
    expect((await signIn("wrong", `${prefix}:0:0:0:ffff`)).status).toBe(429);
    // The neighbouring /64 is someone else.
    expect((await signIn("wrong", `${prefix.replace(/:1$/, ":2")}::1`)).status).toBe(401);
  });
});

describe("console sessions", () => {
  it("stops honouring a session after sign-out, even a copy of its cookie", async () => {
    const cookie = await sessionCookie();
    expect((await visit("/admin", cookie)).status).toBe(200);
    const out = await visit("/admin/console/sign-out", cookie, env(), { method: "POST", headers: { origin: ORIGIN } });
    expect(out.status).toBe(303);
    const replayed = await visit("/admin", cookie);
    expect(replayed.status).toBe(303);
    expect(replayed.headers.get("location")).toBe("/admin/console/sign-in");
  });

  it("refuses a session the ledger holds as expired", async () => {
    const cookie = await sessionCookie();
    expect((await visit("/admin", cookie)).status).toBe(200);
    const id = /[0-9a-f]{8}-[0-9a-f-]{27}/.exec(decodeURIComponent(cookie))?.[0];
    const expired = await ledger()
      .prepare("UPDATE console_sessions SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?1")
      .bind(id ?? "")
      .run();
    expect(expired.meta.changes).toBe(1);
    expect((await visit("/admin", cookie)).status).toBe(303);
  });

  it("refuses a cookie whose signed expiry has passed (without the ledger, the cookie alone is the session)", async () => {
    const { LEDGER: _, ...unbound } = env();
    const app = new Hono().get("/", async (c) => {
      await startSession(c, ADMIN, undefined, Date.now() - 8 * 3_600_000 - 1_000);
      return c.text("ok");
    });
    const issued = await app.request(`${ORIGIN}/`);
    const expired = (issued.headers.get("set-cookie") ?? "").split(";")[0] as string;
    expect(expired).toMatch(/^bridge_console=/);
    expect((await visit("/admin", expired, unbound)).status).toBe(303);
    // The same cookie issued now is honoured: the refusal above is the expiry, not the signature.
    const fresh = new Hono().get("/", async (c) => {
      await startSession(c, ADMIN, undefined);
      return c.text("ok");
    });
    const live = ((await fresh.request(`${ORIGIN}/`)).headers.get("set-cookie") ?? "").split(";")[0] as string;
    expect((await visit("/admin", live, unbound)).status).toBe(200);
  });
});

describe("console sessions when the ledger fails", () => {
  // A D1 whose console_sessions table is missing, as before migrations/0004 is applied.
  const withoutSessions = () =>
    new Proxy(ledger(), {
      get(target, prop) {
        if (prop === "prepare")
          return (query: string) => target.prepare(query.replaceAll("console_sessions", "no_such_table"));
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });

  it("answers 503 ledger_unavailable, not 500, when the sessions table cannot be read (migration not applied)", async () => {
    const cookie = await sessionCookie();
    const response = await visit("/admin", cookie, env({ LEDGER: withoutSessions() }));
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: { code: "ledger_unavailable" } });
  });

  it("answers 503 ledger_unavailable, not 500, at sign-in when the session cannot be written", async () => {
    const response = await signIn(ADMIN, undefined, env({ LEDGER: withoutSessions() }));
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: { code: "ledger_unavailable" } });
  });
});

describe("console paging", () => {
  it("follows 'Next page' with the ledger's cursor to the letters after the first 100", async () => {
    const tag = `paging-${Date.now()}`;
    const letters: DeadLetter[] = Array.from({ length: 105 }, (_, i) => ({
      id: `${tag}-${String(i).padStart(3, "0")}`,
      source: "vero",
      body: { n: i },
      reason: `paged ${tag}`,
      permanent: true,
      attempts: 1,
      failedAt: new Date(Date.UTC(2026, 10, 28, 12, 0, i)).toISOString(),
    }));
    await storeDeadLetters(ledger(), letters);
    const cookie = await sessionCookie();
    const first = await (await visit(`/admin?reason=${encodeURIComponent(`paged ${tag}`)}`, cookie)).text();
    expect(first.match(/data-id="/g)).toHaveLength(100);
    const next = /<a href="([^"]+)">Next page<\/a>/.exec(first)?.[1]?.replaceAll("&amp;", "&");
    expect(next).toBeDefined();
    const second = await visit(next as string, cookie);
    const html = await second.text();
    expect(second.status, html).toBe(200);
    expect([...html.matchAll(/data-id="([^"]+)"/g)].map((m) => m[1])).toEqual(
      letters
        .slice(0, 5)
        .map((letter) => letter.id)
        .reverse(),
    );
    expect(html).not.toContain("Next page");
  });
});
