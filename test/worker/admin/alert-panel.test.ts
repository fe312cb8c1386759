/** The console's alert panel as rendered: alerts off without ALERT_WEBHOOK_URL, the conditions, the last alerts. */
import { beforeEach, describe, expect, it } from "vitest";
import { AlertsPanel } from "../../../src/admin/alerts/panel.tsx";
import { alertStatus } from "../../../src/admin/alerts/status.ts";
import type { Env } from "../../../src/shared/env.ts";
import { addDeadLetter, clearAlertTables } from "../helpers/alerts.ts";
import { baseEnv } from "../helpers/env.ts";

const render = async (env: Env) => String(await AlertsPanel({ status: await alertStatus(env, new Date()) }));

beforeEach(clearAlertTables);

describe("the alert panel", () => {
  it("says alerts are off without ALERT_WEBHOOK_URL, and still shows what holds", async () => {
    await addDeadLetter("panel-1", new Date());
    const html = await render({ ...baseEnv, ALERT_WEBHOOK_URL: undefined });
    expect(html).toContain('id="alerts-off"');
    expect(html).toContain('data-condition="dead-letters"');
  });

  it("names the receiver's host only, never its URL", async () => {
    const url = "https://hooks.slack.com/services/T000/B000/secretpart";
    const html = await render({ ...baseEnv, ALERT_WEBHOOK_URL: url });
    expect(html).toContain("hooks.slack.com");
    expect(html).not.toContain("secretpart");
    expect(html).toContain('id="alerts-clear"');
  });

  it("says there is nothing to check without the ledger", async () => {
    const { LEDGER: _, ...unbound } = baseEnv;
    expect(await render(unbound)).toContain('id="alerts-no-ledger"');
  });
});
