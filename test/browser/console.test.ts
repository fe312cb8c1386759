/**
 * The operator console in a real browser: the bridge under wrangler dev, the
 * stand-ins over real HTTP, Chromium driven by playwright-core.
 */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { RunningBridge } from "../../dev/bridge.ts";
import { DEV_SECRETS } from "../../dev/dev-settings.ts";
import { StandInClient } from "../../dev/stand-ins/client.ts";
import { bridgeAndBrowser, browserRequired, findChromium, HOW_TO_ENABLE } from "./chromium.ts";

const executablePath = findChromium();
const ADMIN = "browser-admin-token-0123456789abcdef";
// Deliveries are waited for until they happen: only each test's timeout bounds the wait.
const UNTIL_TEST_TIMEOUT = Number.POSITIVE_INFINITY;
const run = Date.now().toString(36);
const segment = new StandInClient(inject("segmentOrigin"));
const vero = new StandInClient(inject("veroOrigin"));

if (!executablePath && !browserRequired()) {
  console.warn(`\n[browser tests skipped] ${HOW_TO_ENABLE}.\n`);
}

describe.runIf(!executablePath && browserRequired())("browser tests under CI", () => {
  it("need Chromium", () => {
    throw new Error(`${HOW_TO_ENABLE}; CI requires the browser tests (CI=true).`);
  });
});

describe.skipIf(!executablePath)(
  `the console in Chromium${executablePath ? "" : ` (skipped: ${HOW_TO_ENABLE})`}`,
  () => {
    let bridge: RunningBridge;
    let browser: Browser;
    let page: Page;
    let writeKey: string;
    let veroToken: string;

    beforeAll(async () => {
      ({ bridge, writeKey, veroToken, browser, page } = await bridgeAndBrowser(executablePath as string, ADMIN, {
        signIn: false,
      }));
    }, 120_000);

    afterAll(async () => {
      await Promise.all([browser?.close(), bridge?.stop()]);
    });

    const trackEvent = (n: number, properties: Record<string, unknown> = {}) => ({
      type: "track",
      messageId: `${run}-${n}`,
      userId: `browser-user-${n}`,
      event: "Viewed product",
      properties: { n, ...properties },
      timestamp: new Date().toISOString(),
    });

    async function postSegment(event: unknown): Promise<void> {
      const response = await fetch(`${bridge.url}/segment`, {
        method: "POST",
        body: JSON.stringify(event),
        headers: {
          authorization: `Basic ${btoa(`${DEV_SECRETS.SEGMENT_SHARED_SECRET}:`)}`,
          "content-type": "application/json",
        },
      });
      expect(response.status).toBe(202);
    }

    async function postWebhook(n: number): Promise<void> {
      const response = await fetch(`${bridge.url}/vero/webhook?token=${DEV_SECRETS.VERO_WEBHOOK_TOKEN}`, {
        method: "POST",
        body: JSON.stringify({
          type: "opened",
          opened_at: 1_700_000_000 + n,
          message_id: `${run}-webhook-${n}`,
          user: { id: `browser-user-${n}`, email: `browser-user-${n}@example.com` },
          campaign: { id: 1, name: "Welcome" },
        }),
      });
      expect(response.status).toBe(202);
    }

    const admin = async <T>(path: string): Promise<T> =>
      (await (
        await fetch(`${bridge.url}/admin${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
      ).json()) as T;

    type Letter = {
      id: string;
      source: string;
      body: unknown;
      reason: string;
      permanent: boolean;
      attempts: number;
      failedAt: string;
    };

    /**
     * Waits for the consumer to dead-letter the message whose body contains `marker`, and returns it.
     * Only the test's timeout bounds the wait, so a busy machine makes it slower, not failed.
     */
    async function deadLetterFor(marker: string): Promise<Letter> {
      for (;;) {
        const { letters } = await admin<{ letters: { id: string }[] }>("/dead-letters?limit=1000");
        for (const summary of letters) {
          const { letter } = await admin<{ letter: Letter }>(`/dead-letters/${encodeURIComponent(summary.id)}`);
          if (JSON.stringify(letter.body).includes(marker)) return letter;
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }

    async function signIn(token: string): Promise<void> {
      await page.goto(`${bridge.url}/admin`);
      await page.getByLabel(/Admin token/).fill(token);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.waitForLoadState();
    }

    it("refuses a wrong token without showing data, and signs in with the right one", async () => {
      await page.goto(`${bridge.url}/admin`);
      expect(new URL(page.url()).pathname).toBe("/admin/console/sign-in");

      await signIn("not-the-admin-token");
      await expect(page.getByRole("alert").textContent()).resolves.toMatch(/not the admin token/);
      expect(await page.locator("#dead-letters").count()).toBe(0);
      expect(await page.locator("#status").count()).toBe(0);

      await signIn(ADMIN);
      expect(new URL(page.url()).pathname).toBe("/admin");
      expect(await page.locator("#status").textContent()).toMatch(/Inbound \(Vero → Segment\)\s*ready/);
      expect(await page.locator("#dead-letters h2").textContent()).toBe("Dead letters");
    }, 60_000);

    it("counts events delivered through the routes, per direction and name", async () => {
      for (let n = 0; n < 3; n++) await postWebhook(n);
      for (let n = 0; n < 2; n++) await postSegment(trackEvent(100 + n));
      await segment.waitFor(writeKey, (calls) => calls.some((call) => call.status === 200), {
        timeoutMs: UNTIL_TEST_TIMEOUT,
      });
      await vero.waitFor(veroToken, (calls) => calls.filter((call) => call.status === 200).length >= 2, {
        timeoutMs: UNTIL_TEST_TIMEOUT,
      });
      const inbound = page.locator('#flow-day table.flow[data-direction="inbound"]');
      const outbound = page.locator('#flow-day table.flow[data-direction="outbound"]');
      const outboundDelivered = async () => {
        await page.goto(`${bridge.url}/admin`);
        return Number(await outbound.locator('tr.total td[data-outcome="delivered"]').textContent());
      };
      // The mailboxes' counts reach D1 through the counter shards, a few seconds after the calls.
      for (let tries = 0; tries < 60 && (await outboundDelivered()) === 0; tries++)
        await new Promise((resolve) => setTimeout(resolve, 500));
      expect(Number(await inbound.locator('tr.total td[data-outcome="delivered"]').textContent())).toBe(3);
      expect(Number(await outbound.locator('tr.total td[data-outcome="delivered"]').textContent())).toBeGreaterThan(0);
      expect(await inbound.locator("tbody").textContent()).toMatch(/Email Opened/);
      // Delivery latency beside the flow, written with the same counts.
      const latency = (direction: string, field: string) =>
        page.locator(`#latency-table tr[data-direction="${direction}"][data-range="day"] td[data-field="${field}"]`);
      expect(Number(await latency("inbound", "count").textContent())).toBe(3);
      expect(Number(await latency("outbound", "count").textContent())).toBeGreaterThan(0);
      for (const direction of ["inbound", "outbound"])
        expect(await latency(direction, "p95").textContent()).toMatch(/^\d+(\.\d)? (s|min|h)$/);
    }, 90_000);

    it("shows a dead letter with its reason, re-drives it once the stand-in is healed, and it is delivered", async () => {
      await vero.fail(veroToken, { status: 400 });
      const marker = `${run}-refused`;
      await postSegment(trackEvent(1, { marker }));
      const letter = await deadLetterFor(marker);
      expect(letter.reason).toMatch(/^Vero answered 400/);

      await page.goto(`${bridge.url}/admin`);
      const row = page.locator(`#dead-letter-table tr[data-id="${letter.id}"]`);
      expect(await row.locator(".reason").textContent()).toMatch(/^Vero answered 400/);
      // `npm run screenshot` asks for docs/console.png; a plain test run leaves the tracked file alone.
      const screenshot = process.env.CONSOLE_SCREENSHOT;
      if (screenshot) {
        await mkdir(dirname(screenshot), { recursive: true });
        await page.setViewportSize({ width: 1200, height: 900 });
        await page.screenshot({ path: screenshot, fullPage: true });
      }

      await vero.heal(veroToken);
      await row.getByRole("link", { name: "details" }).click();
      expect(await page.locator("#letter-body").textContent()).toContain(marker);
      await page.getByRole("link", { name: "Re-drive…" }).click();
      expect(await page.locator("#confirm").textContent()).toMatch(/Re-drive dead letter/);
      await page.getByRole("button", { name: "Re-drive" }).click();
      await page.waitForLoadState();
      expect(await page.locator("#notice").textContent()).toMatch(/Re-drove 1 dead letter/);
      expect(await page.locator(`#dead-letter-table tr[data-id="${letter.id}"]`).count()).toBe(0);

      const calls = await vero.waitFor(
        veroToken,
        (all) => all.some((call) => call.status === 200 && JSON.stringify(call.body).includes(marker)),
        { timeoutMs: UNTIL_TEST_TIMEOUT },
      );
      expect(calls.filter((call) => call.status === 200 && JSON.stringify(call.body).includes(marker))).toHaveLength(1);
    }, 90_000);

    it("shows a hostile payload as text and runs none of it", async () => {
      await vero.fail(veroToken, { status: 400 });
      const marker = `${run}-hostile`;
      const payload = `<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned = 2">`;
      await postSegment(trackEvent(2, { marker, payload }));
      const letter = await deadLetterFor(marker);
      await vero.heal(veroToken);

      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      await page.goto(`${bridge.url}/admin/console/dead-letters/${encodeURIComponent(letter.id)}`);
      expect(await page.locator("#letter-body").textContent()).toContain(JSON.stringify(payload).slice(1, -1));
      expect(await page.locator("#letter-body img").count()).toBe(0);
      expect(await page.locator("script").count()).toBe(0);
      expect(await page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned)).toBeUndefined();
      expect(errors).toEqual([]);

      // Deleted through its confirmation page, it leaves the list.
      await page.getByRole("link", { name: "Delete…" }).click();
      await page.getByRole("button", { name: "Delete" }).click();
      await page.waitForLoadState();
      expect(await page.locator("#notice").textContent()).toMatch(/Deleted 1 dead letter/);
      expect(await page.locator(`tr[data-id="${letter.id}"]`).count()).toBe(0);
    }, 90_000);

    it("pages through 250 dead letters with 'Next page', each letter once", async () => {
      const since = new Date().toISOString();
      await vero.fail(veroToken, { status: 400, times: 250 });
      await postSegment(Array.from({ length: 250 }, (_, i) => trackEvent(1_000 + i, { paging: true })));
      const query = `since=${encodeURIComponent(since)}`;
      for (const deadline = Date.now() + 90_000; ; ) {
        const { total } = await admin<{ total: number }>(`/dead-letters?${query}&limit=1`);
        if (total >= 250) break;
        if (Date.now() > deadline) throw new Error(`only ${total} of 250 dead letters within 90 s`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await vero.heal(veroToken);

      await page.goto(`${bridge.url}/admin?${query}`);
      const seen: string[] = [];
      let pages = 0;
      for (;;) {
        pages++;
        const ids = await page
          .locator("#dead-letter-table tr[data-id]")
          .evaluateAll((rows) => rows.map((row) => row.getAttribute("data-id") ?? ""));
        seen.push(...ids);
        const next = page.getByRole("link", { name: "Next page" });
        if ((await next.count()) === 0) break;
        await next.click();
        await page.waitForLoadState();
      }
      expect(pages).toBe(3);
      expect(seen).toHaveLength(250);
      expect(new Set(seen).size).toBe(250);
    }, 150_000);

    it("refuses a form posted from another site", async () => {
      const attacker = "http://attacker.test";
      await page.route(`${attacker}/**`, (route) =>
        route.fulfill({
          contentType: "text/html",
          body: `<form method="post" action="${bridge.url}/admin/console/redrive"><input name="source" value="vero"></form>
               <script>document.forms[0].submit()</script>`,
        }),
      );
      const [response] = await Promise.all([
        page.waitForResponse((candidate) => candidate.url() === `${bridge.url}/admin/console/redrive`),
        page.goto(`${attacker}/`),
      ]);
      expect(response.status()).toBe(403);
    }, 60_000);
  },
);
