/**
 * Where the browser tests find Chromium: CHROMIUM_PATH, else `chromium` (Debian's package) or
 * `chromium-browser` on PATH. Without one they are skipped, except under CI=true, where they fail.
 */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { bridgeWithTenants, type TenantBridge } from "../node/tenant-bridge.ts";

const isExecutable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env.CHROMIUM_PATH?.trim();
  if (explicit) return isExecutable(explicit) ? explicit : undefined;
  for (const dir of (env.PATH ?? "").split(delimiter).filter(Boolean)) {
    for (const name of ["chromium", "chromium-browser"]) {
      if (isExecutable(join(dir, name))) return join(dir, name);
    }
  }
  return undefined;
}

export const HOW_TO_ENABLE =
  "Chromium was not found: install it (`sudo apt-get install -y chromium`) or set CHROMIUM_PATH to a Chromium binary";

/** CI runs the browser tests or fails: a skip there would hide a console no test has seen. */
export const browserRequired = (env: NodeJS.ProcessEnv = process.env) => env.CI === "true" || env.CI === "1";

/** Flags for a quiet, offline, throwaway Chromium; playwright gives each launch a fresh profile. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * The bridge under wrangler dev (with its own stand-in tenants) and Chromium, started side by side, and a
 * page; with `signIn`, the page is signed in to the console with `adminToken`.
 */
export async function bridgeAndBrowser(
  executablePath: string,
  adminToken: string,
  { signIn, ...extra }: Parameters<typeof bridgeWithTenants>[2] & { signIn: boolean },
): Promise<TenantBridge & { browser: Browser; page: Page }> {
  const [tenant, browser] = await Promise.all([
    bridgeWithTenants(adminToken, undefined, extra),
    chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS }),
  ]);
  const page = await browser.newPage();
  if (signIn) {
    await page.goto(`${tenant.bridge.url}/admin`);
    await page.getByLabel(/Admin token/).fill(adminToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForLoadState();
  }
  return { ...tenant, browser, page };
}
