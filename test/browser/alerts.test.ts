/**
 * The console's alert panel in Chromium: the bridge under wrangler dev with
 * ALERT_WEBHOOK_URL at the receiver stand-in, a real dead letter, and the
 * alert cron run through wrangler's --test-scheduled route.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { RunningBridge } from "../../dev/bridge.ts";
import { DEV_SECRETS } from "../../dev/dev-settings.ts";
import { StandInClient } from "../../dev/stand-ins/client.ts";
import { bridgeAndBrowser, browserRequired, findChromium, HOW_TO_ENABLE } from "./chromium.ts";

const executablePath = findChromium();
const ADMIN = "browser-alerts-admin-token-for-tests";
const ALERT_CRON = "*/5 * * * *";
const vero = new StandInClient(inject("veroOrigin"));
const receiver = new StandInClient(inject("alertsOrigin"));

describe.runIf(!executablePath && browserRequired())("browser tests under CI", () => {
  it("need Chromium", () => {
    throw new Error(`${HOW_TO_ENABLE}; CI requires the browser tests (CI=true).`);
  });
});

describe.skipIf(!executablePath)("the console's alert panel in Chromium", () => {
  let bridge: RunningBridge;
  let browser: Browser;
  let page: Page;
  let veroToken: string;
  let hook: string;

  beforeAll(async () => {
    hook = await receiver.tenant();
    ({ bridge, veroToken, browser, page } = await bridgeAndBrowser(executablePath as string, ADMIN, {
      vars: { ALERT_WEBHOOK_URL: `${receiver.origin}/hooks/${hook}` },
      args: ["--test-scheduled"],
      signIn: true,
    }));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([browser?.close(), bridge?.stop()]);
  });

  const runCron = async () => {
    const response = await fetch(`${bridge.url}/__scheduled?cron=${encodeURIComponent(ALERT_CRON)}`);
    await response.arrayBuffer();
    expect(response.status).toBe(200);
  };

  it("says alerts are on, where they go (the host only), and that nothing holds", async () => {
    await page.goto(`${bridge.url}/admin`);
    const panel = page.locator("#alerts");
    expect(await panel.locator("#alerts-on").textContent()).toContain(new URL(receiver.origin).host);
    expect(await panel.textContent()).not.toContain(hook);
    expect(await panel.locator("#alerts-clear").isVisible()).toBe(true);
    expect(await panel.locator("#alerts-none-sent").isVisible()).toBe(true);
  });

  it("shows a dead letter as a condition and the alert the cron sent for it", async () => {
    await vero.fail(veroToken, { status: 400, times: 1 });
    const response = await fetch(`${bridge.url}/segment`, {
      method: "POST",
      body: JSON.stringify({ type: "track", messageId: `alerts-${Date.now()}`, userId: "u-alerts", event: "Refused" }),
      headers: {
        authorization: `Basic ${btoa(`${DEV_SECRETS.SEGMENT_SHARED_SECRET}:`)}`,
        "content-type": "application/json",
      },
    });
    expect(response.status).toBe(202);
    await vero.waitFor(veroToken, (calls) => calls.some((call) => call.status === 400), { timeoutMs: 30_000 });
    // The dead letter is stored by the consumer after Vero's refusal: run the cron until it has alerted.
    for (const deadline = Date.now() + 30_000; (await receiver.calls(hook)).length === 0; ) {
      if (Date.now() > deadline) throw new Error("no alert within 30 s");
      await runCron();
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const [alert] = await receiver.calls(hook);
    expect((alert?.body as { text?: string } | undefined)?.text).toContain("1 new dead letter since the last alert");

    await page.goto(`${bridge.url}/admin`);
    const condition = page.locator('#alert-conditions li[data-condition="dead-letters"]');
    expect(await condition.textContent()).toMatch(/dead letter/);
    expect(await condition.getByRole("link", { name: "show" }).getAttribute("href")).toBe("/admin#dead-letters");
    const sent = page.locator('#alerts-sent tr[data-condition="dead-letters"]');
    expect(await sent.count()).toBe(1);
    expect(await sent.textContent()).toMatch(/delivered/);
  }, 90_000);
});
