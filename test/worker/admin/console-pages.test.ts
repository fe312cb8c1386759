import { describe, expect, it } from "vitest";
import { bucketsOf, FlowChart, FlowTable, rowsIn, topNames, totalOf } from "../../../src/admin/flow.tsx";
import { type CounterRow, type DeadLetter, getDeadLetter, storeDeadLetters } from "../../../src/delivery/ledger.ts";
import type { Env } from "../../../src/shared/env.ts";
import {
  ORIGIN,
  sessionCookie as sessionCookieOf,
  signIn as signInForm,
  visit as visitPage,
} from "../helpers/console.ts";
import { baseEnv } from "../helpers/env.ts";

const row = (
  hour: string,
  direction: CounterRow["direction"],
  name: string,
  outcome: CounterRow["outcome"],
  count: number,
) => ({ hour, direction, name, outcome, count }) satisfies CounterRow;

const ROWS: CounterRow[] = [
  row("2026-11-28T10:00:00.000Z", "inbound", "Email Opened", "delivered", 6),
  row("2026-11-28T10:00:00.000Z", "inbound", "Email Opened", "retried", 2),
  row("2026-11-28T11:00:00.000Z", "inbound", "Email Clicked", "delivered", 3),
  row("2026-11-28T11:00:00.000Z", "inbound", "Email Bounced", "dead_lettered", 1),
  row("2026-11-28T11:00:00.000Z", "outbound", "POST /events/track", "delivered", 4),
  row("2026-11-28T11:00:00.000Z", "outbound", "PUT /users/edit", "refused", 5),
  row("2026-11-28T11:00:00.000Z", "outbound", "No page views", "filtered", 7),
  row("2026-11-20T11:00:00.000Z", "inbound", "Email Opened", "delivered", 100),
];
const UNTIL = new Date("2026-11-28T12:00:00.000Z");
const DAY_AGO = new Date("2026-11-27T12:00:00.000Z");

describe("console flow panel (pure functions of the counters)", () => {
  it("keeps only one direction's rows inside the range", () => {
    const inbound = rowsIn(ROWS, "inbound", DAY_AGO, UNTIL);
    expect(inbound).toHaveLength(4);
    expect(totalOf(inbound)).toEqual({ delivered: 9, retried: 2, dead_lettered: 1, refused: 0, filtered: 0 });
    expect(totalOf(rowsIn(ROWS, "outbound", DAY_AGO, UNTIL))).toEqual({
      delivered: 4,
      retried: 0,
      dead_lettered: 0,
      refused: 5,
      filtered: 7,
    });
  });

  it("puts every hour in its bucket and leaves empty hours at zero", () => {
    const buckets = bucketsOf(rowsIn(ROWS, "inbound", DAY_AGO, UNTIL), UNTIL, 24, 1);
    expect(buckets).toHaveLength(24);
    expect(buckets[0]?.start).toBe("2026-11-27T12:00:00.000Z");
    expect(buckets[22]).toEqual({
      start: "2026-11-28T10:00:00.000Z",
      tally: { delivered: 6, retried: 2, dead_lettered: 0, refused: 0, filtered: 0 },
    });
    expect(buckets[23]?.tally).toEqual({ delivered: 3, retried: 0, dead_lettered: 1, refused: 0, filtered: 0 });
    expect(buckets.slice(0, 22).every((bucket) => Object.values(bucket.tally).every((n) => n === 0))).toBe(true);
    const sixHourly = bucketsOf(rowsIn(ROWS, "inbound", DAY_AGO, UNTIL), UNTIL, 4, 6);
    expect(sixHourly[3]?.tally).toEqual({ delivered: 9, retried: 2, dead_lettered: 1, refused: 0, filtered: 0 });
  });

  it("ranks names by their total, then by name", () => {
    const top = topNames(rowsIn(ROWS, "inbound", DAY_AGO, UNTIL));
    expect(top.map((flow) => [flow.name, flow.total])).toEqual([
      ["Email Opened", 8],
      ["Email Clicked", 3],
      ["Email Bounced", 1],
    ]);
    expect(topNames(rowsIn(ROWS, "inbound", DAY_AGO, UNTIL), 1)).toHaveLength(1);
  });

  it("draws stacked bars whose heights are proportional to the counts, each titled with its count", async () => {
    const buckets = bucketsOf(rowsIn(ROWS, "inbound", DAY_AGO, UNTIL), UNTIL, 24, 1);
    const svg = String(await FlowChart({ buckets, bucketHours: 1, label: "inbound" })?.toString());
    const rects = [...svg.matchAll(/<rect [^>]*height="([\d.]+)"[^>]*data-outcome="(\w+)" data-count="(\d+)"/g)].map(
      (match) => ({ height: Number(match[1]), outcome: match[2], count: Number(match[3]) }),
    );
    expect(rects.map((rect) => [rect.outcome, rect.count])).toEqual([
      ["delivered", 6],
      ["retried", 2],
      ["delivered", 3],
      ["dead_lettered", 1],
    ]);
    // The tallest bar (8) fills the plot; the others scale with it.
    const unit = (rects[0]?.height ?? 0) / 6;
    for (const rect of rects) expect(rect.height).toBeCloseTo(rect.count * unit, 0);
    expect(svg).toContain("<title>2026-11-28T10:00:00.000Z: 6 delivered</title>");
  });

  it("renders an event name as text, never as markup", async () => {
    const hostile = [row("2026-11-28T11:00:00.000Z", "inbound", '<img src=x onerror="alert(1)">', "delivered", 1)];
    const html = String(await FlowTable({ rows: hostile, direction: "inbound", caption: "x" })?.toString());
    expect(html).not.toContain("<img");
    expect(html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
  });
});

const ADMIN = "console-admin-token-0123456789abcdef";
const OLD_ADMIN = "old-admin-0123456789abcdef0123456789";
const NEW_ADMIN = "new-admin-0123456789abcdef0123456789";
const env = (extra: Partial<Env> = {}): Env => ({ ...baseEnv, ADMIN_TOKEN: ADMIN, ...extra });

const signIn = (token: string, workerEnv = env(), origin = ORIGIN) => signInForm(token, workerEnv, { origin });
const sessionCookie = (token = ADMIN, workerEnv = env()) => sessionCookieOf(token, workerEnv);
const visit = (path: string, cookie: string, workerEnv = env(), init: RequestInit = {}) =>
  visitPage(path, cookie, workerEnv, init);

const letter = (id: string, body: unknown = { kind: "vero", note: id }): DeadLetter => ({
  id,
  source: "vero",
  body,
  reason: "Vero answered 400: id is longer than 255 characters",
  permanent: true,
  attempts: 1,
  failedAt: "2026-11-28T12:00:00.000Z",
});

describe("console sign-in and session", () => {
  it("sends a visitor without a session to the sign-in page, showing no data", async () => {
    const response = await visit("/admin", "");
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/admin/console/sign-in");
  });

  it("refuses a wrong token with 401 and sets no cookie", async () => {
    const response = await signIn("not-the-token");
    expect(response.status).toBe(401);
    expect(response.headers.get("set-cookie")).toBeNull();
    expect(await response.text()).toContain("That is not the admin token");
  });

  it("sets an HttpOnly, SameSite=Strict, expiring cookie; Secure with __Host- off loopback", async () => {
    const local = (await signIn(ADMIN)).headers.get("set-cookie") ?? "";
    expect(local).toMatch(/HttpOnly/);
    expect(local).toMatch(/SameSite=Strict/);
    expect(local).toMatch(/Max-Age=28800/);
    expect(local).not.toMatch(/Secure/);
    const deployed = (await signIn(ADMIN, env(), "https://bridge.example.com")).headers.get("set-cookie") ?? "";
    expect(deployed).toMatch(/^__Host-bridge_console=/);
    expect(deployed).toMatch(/Secure/);
  });

  it("shows the console with a nonce-only CSP to a signed-in operator, and signs out", async () => {
    const cookie = await sessionCookie();
    const response = await visit("/admin", cookie);
    expect(response.status).toBe(200);
    const csp = response.headers.get("content-security-policy") ?? "";
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/style-src 'nonce-[^']+'/);
    expect(csp).not.toMatch(/unsafe-inline/);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.text()).toContain("Dead letters");

    const out = await visit("/admin/console/sign-out", cookie, env(), { method: "POST", headers: { origin: ORIGIN } });
    expect(out.status).toBe(303);
    expect(out.headers.get("set-cookie")).toMatch(/Max-Age=0/);
  });

  it("keeps sessions of a token still configured across a rotation, and drops those of the removed one", async () => {
    const oldCookie = await sessionCookie(OLD_ADMIN, env({ ADMIN_TOKEN: OLD_ADMIN }));
    const rotating = env({ ADMIN_TOKEN: `${OLD_ADMIN},${NEW_ADMIN}` });
    expect((await visit("/admin", oldCookie, rotating)).status).toBe(200);
    const newCookie = await sessionCookie(NEW_ADMIN, rotating);
    const rotated = env({ ADMIN_TOKEN: NEW_ADMIN });
    expect((await visit("/admin", newCookie, rotated)).status).toBe(200);
    expect((await visit("/admin", oldCookie, rotated)).status).toBe(303);
  });

  it("refuses a cross-site form POST before it acts", async () => {
    const cookie = await sessionCookie();
    await storeDeadLetters(baseEnv.LEDGER as D1Database, [letter("csrf-target")]);
    const response = await visit("/admin/console/dead-letters/csrf-target/delete", cookie, env(), {
      method: "POST",
      headers: { origin: "https://evil.example", "content-type": "application/x-www-form-urlencoded" },
    });
    expect(response.status).toBe(403);
    expect(await getDeadLetter(baseEnv.LEDGER as D1Database, "csrf-target")).toBeDefined();
  });
});

describe("console pages", () => {
  it("shows in its status panel whether /segment accepts first-event signatures", async () => {
    const row = (html: string) => html.match(/<tr data-part="firstEventSignatures">[\s\S]*?<\/tr>/)?.[0] ?? "";
    const off = await (await visit("/admin", await sessionCookie())).text();
    expect(row(off)).toContain("refused");
    const on = { ...env(), SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: "true" };
    const html = await (await visit("/admin", await sessionCookie(ADMIN, on), on)).text();
    expect(row(html)).toContain("Arrays on /segment signed over their first event only");
    expect(row(html)).toContain("accepted (weaker)");
  });

  it("says the ledger is not bound, instead of failing", async () => {
    const { LEDGER: _, ...unbound } = env();
    const cookie = await sessionCookie(ADMIN, unbound);
    const html = await (await visit("/admin", cookie, unbound)).text();
    expect(html).toContain('id="ledger-missing"');
    expect(html).toContain("The ledger is not bound");
  });

  it("shows a dead letter's body pretty-printed as text, whatever it contains", async () => {
    const cookie = await sessionCookie();
    const body = { note: '<script>window.pwned=1</script>"><img src=x onerror="window.pwned=2">' };
    await storeDeadLetters(baseEnv.LEDGER as D1Database, [letter("hostile-body", body)]);
    const html = await (await visit("/admin/console/dead-letters/hostile-body", cookie)).text();
    expect(html).not.toContain("<script>window.pwned");
    expect(html).not.toContain("<img src=x");
    expect(html).toContain("&lt;script&gt;window.pwned=1&lt;/script&gt;");
    expect(html).toContain("{\n  &quot;note&quot;: ");
  });

  it("re-drives a dead letter to its queue after the confirmation, and removes it from the ledger", async () => {
    const sent: unknown[] = [];
    const queue = { send: async (body: unknown) => void sent.push(body) } as unknown as Queue<unknown>;
    const workerEnv = env({ VERO_QUEUE: queue });
    const cookie = await sessionCookie(ADMIN, workerEnv);
    await storeDeadLetters(baseEnv.LEDGER as D1Database, [letter("redrive-me")]);

    const confirm = await visit("/admin/console/dead-letters/redrive-me/redrive", cookie, workerEnv);
    expect(await confirm.text()).toContain('action="/admin/console/dead-letters/redrive-me/redrive"');
    expect(sent).toEqual([]);

    const done = await visit("/admin/console/dead-letters/redrive-me/redrive", cookie, workerEnv, {
      method: "POST",
      headers: { origin: ORIGIN, "content-type": "application/x-www-form-urlencoded" },
    });
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe("/admin?done=redriven&count=1");
    expect(sent).toEqual([{ kind: "vero", note: "redrive-me" }]);
    expect(await getDeadLetter(baseEnv.LEDGER as D1Database, "redrive-me")).toBeUndefined();
  });

  it("answers 400 naming the filter that is wrong", async () => {
    const cookie = await sessionCookie();
    const response = await visit("/admin?since=yesterday", cookie);
    expect(response.status).toBe(400);
    expect(await response.text()).toMatch(/since: must be an ISO date and time/);
  });
});
