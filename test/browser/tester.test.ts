/**
 * The console's event tester in a real browser, both directions: a dry run
 * shows the filter decision and the exact calls and sends nothing; "Send for
 * real" delivers to the stand-ins. No secret is ever on the page.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { RunningBridge } from "../../dev/bridge.ts";
import { DEV_SECRETS } from "../../dev/dev-settings.ts";
import { StandInClient } from "../../dev/stand-ins/client.ts";
import { bridgeAndBrowser, findChromium, HOW_TO_ENABLE } from "./chromium.ts";

const executablePath = findChromium();
const ADMIN = "tester-browser-admin-0123456789abcdef";
const UNTIL_TEST_TIMEOUT = Number.POSITIVE_INFINITY;
const segment = new StandInClient(inject("segmentOrigin"));
const vero = new StandInClient(inject("veroOrigin"));

const FILTERS = JSON.stringify([
  { title: "No page views", if: 'type = "page"', actions: [{ type: "DROP" }], enabled: true },
]);

describe.skipIf(!executablePath)(
  `the event tester in Chromium${executablePath ? "" : ` (skipped: ${HOW_TO_ENABLE})`}`,
  () => {
    let bridge: RunningBridge;
    let browser: Browser;
    let page: Page;
    let writeKey: string;
    let veroToken: string;

    beforeAll(async () => {
      ({ bridge, writeKey, veroToken, browser, page } = await bridgeAndBrowser(executablePath as string, ADMIN, {
        vars: { DESTINATION_FILTERS: FILTERS },
        signIn: true,
      }));
    }, 120_000);

    afterAll(async () => {
      await Promise.all([browser?.close(), bridge?.stop()]);
    });

    /** The page shows none of the bridge's secrets, in its text or its markup. */
    async function expectNoSecret(): Promise<void> {
      const html = await page.content();
      for (const secret of [
        veroToken,
        writeKey,
        ADMIN,
        DEV_SECRETS.SEGMENT_SHARED_SECRET,
        DEV_SECRETS.VERO_WEBHOOK_TOKEN,
      ])
        expect(html).not.toContain(secret);
    }

    async function submit(button: "Dry run" | "Send for real"): Promise<void> {
      await page.getByRole("button", { name: button }).click();
      await page.waitForLoadState();
    }

    it("outbound: a dry run shows the filter decision and the Vero call with the credential masked, and sends nothing", async () => {
      await page.getByRole("link", { name: "Event tester" }).click();
      await page.getByRole("link", { name: "Segment identify from a phone" }).click();
      expect(await page.getByLabel("payload").inputValue()).toContain('"device-token-1"');
      await submit("Dry run");
      expect(await page.locator("#tester-result h2").textContent()).toBe("Dry run: nothing sent");
      const call = await page.locator('#tester-result [data-outcome="send"] pre').textContent();
      expect(call).toContain("POST http://");
      expect(call).toContain("/users/track");
      expect(call).toContain('"auth_token": "<VERO_AUTH_TOKEN>"');
      expect(call).toContain('"platform": "android"');
      await expectNoSecret();

      await page
        .getByLabel("payload")
        .fill(JSON.stringify({ type: "page", messageId: "browser-tester-page", userId: "u-1" }));
      await submit("Dry run");
      expect(await page.locator('#tester-result [data-outcome="filtered"] h3').textContent()).toBe(
        "browser-tester-page: filtered by filter “No page views”",
      );
      expect(await vero.calls(veroToken)).toEqual([]);
    }, 60_000);

    it("outbound: Send for real hands the event to the user's mailbox, which delivers it to Vero", async () => {
      await page.goto(`${bridge.url}/admin/console/tester?sample=segment-track`);
      await submit("Send for real");
      expect(await page.locator("#tester-result h2").textContent()).toBe("Sent");
      expect(await page.locator('[data-sent="ok"]').textContent()).toMatch(/the user's mailbox took 1 job/);
      await expectNoSecret();
      const calls = await vero.waitFor(veroToken, (all) => all.some((c) => c.status === 200), {
        timeoutMs: UNTIL_TEST_TIMEOUT,
      });
      expect(calls.map((c) => [c.path, (c.body as { event_name?: string }).event_name])).toEqual([
        ["/api/v2/events/track", "Order Completed"],
      ]);
    }, 60_000);

    it("inbound: a dry run shows the Segment call with the write key masked; Send for real delivers it", async () => {
      await page.goto(`${bridge.url}/admin/console/tester`);
      await page.getByRole("link", { name: "Vero webhook: opened" }).click();
      expect(await page.getByLabel("Direction").inputValue()).toBe("inbound");
      await submit("Dry run");
      const call = await page.locator('#tester-result [data-outcome="send"] pre').textContent();
      expect(call).toContain("/v1/batch");
      expect(call).toContain("Authorization: Basic <SEGMENT_WRITE_KEY>");
      expect(call).toContain('"event": "Email Opened"');
      await expectNoSecret();
      expect(await segment.calls(writeKey)).toEqual([]);

      await submit("Send for real");
      expect(await page.locator('[data-sent="ok"]').textContent()).toBe("Segment accepted the message");
      await expectNoSecret();
      const calls = await segment.waitFor(writeKey, (all) => all.some((c) => c.status === 200), {
        timeoutMs: UNTIL_TEST_TIMEOUT,
      });
      expect(JSON.stringify(calls[0]?.body)).toContain("Email Opened");
    }, 60_000);
  },
);
