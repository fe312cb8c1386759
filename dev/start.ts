/**
 * `npm start`: the bridge under `wrangler dev` on http://127.0.0.1:8787,
 * wired to local stand-ins of Segment and Vero, printing every call they
 * receive. No account and no credentials needed: nothing leaves this machine.
 * A port that is taken (PORT, or a stand-in's) is replaced by a free one, and said.
 */
import { freePort, portIsFree, startBridge } from "./bridge.ts";
import { DEV_SECRETS, devBindings } from "./dev-settings.ts";
import { formatCall } from "./format-call.ts";
import { startAlertStandIn } from "./stand-ins/alerts.ts";
import { StandInClient } from "./stand-ins/client.ts";
import type { StandIn } from "./stand-ins/harness.ts";
import { startSegmentStandIn } from "./stand-ins/segment.ts";
import { startVeroStandIn } from "./stand-ins/vero.ts";

const BRIDGE_PORT = Number(process.env.PORT || 8787);
const SEGMENT_PORT = Number(process.env.SEGMENT_STAND_IN_PORT || 8790);
const VERO_PORT = Number(process.env.VERO_STAND_IN_PORT || 8791);
const ALERTS_PORT = Number(process.env.ALERT_STAND_IN_PORT || 8792);
/** How often the sandbox runs the alert cron (deployed, Cloudflare runs it every 5 minutes). */
const ALERT_CHECK_MS = 15_000;
const ALERT_CRON = "*/5 * * * *";

const print = (line: string) => process.stdout.write(`${line}\n`);

async function listen(name: string, start: (port: number) => Promise<StandIn>, port: number): Promise<StandIn> {
  try {
    return await start(port);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
    const standIn = await start(0);
    print(`Port ${port} is taken: the ${name} stand-in listens on ${new URL(standIn.url).port} instead`);
    return standIn;
  }
}

const segment = await listen(
  "Segment",
  (port) =>
    startSegmentStandIn({ tenants: [DEV_SECRETS.SEGMENT_WRITE_KEY], onCall: (call) => print(formatCall(call)) }, port),
  SEGMENT_PORT,
);
const vero = await listen(
  "Vero",
  (port) =>
    startVeroStandIn({ tenants: [DEV_SECRETS.VERO_AUTH_TOKEN], onCall: (call) => print(formatCall(call)) }, port),
  VERO_PORT,
);

const alerts = await listen(
  "alert receiver",
  (port) =>
    startAlertStandIn(
      {
        tenants: ["sandbox"],
        onCall: (call) =>
          print(
            `${new Date(call.at).toISOString().slice(11, 23)} alert   -> ${call.status}\n${String((call.body as { text?: unknown }).text ?? JSON.stringify(call.body)).replace(/^/gm, "    ")}`,
          ),
      },
      port,
    ),
  ALERTS_PORT,
);

print(`Segment stand-in: ${segment.url}   (write key ${DEV_SECRETS.SEGMENT_WRITE_KEY})`);
print(`Vero stand-in:    ${vero.url}/api/v2   (auth_token ${DEV_SECRETS.VERO_AUTH_TOKEN})`);
print(`Alert receiver:   ${alerts.url}/hooks/sandbox   (ALERT_WEBHOOK_URL)`);
// Often another `wrangler dev` holds 8787, wrangler's default: the bridge then takes a free port.
const bridgePort = (await portIsFree(BRIDGE_PORT)) ? BRIDGE_PORT : await freePort();
if (bridgePort !== BRIDGE_PORT) print(`Port ${BRIDGE_PORT} is taken: the bridge listens on ${bridgePort} instead`);
print(`Bridge:           http://127.0.0.1:${bridgePort}   (starting wrangler dev...)`);

const bridge = await startBridge({
  vars: {
    ...devBindings(segment.url, vero.url),
    ALERT_WEBHOOK_URL: `${alerts.url}/hooks/sandbox`,
    PUBLIC_URL: `http://127.0.0.1:${bridgePort}`,
  },
  port: bridgePort,
  // Lets the sandbox run the alert cron at /__scheduled, sooner than every 5 minutes.
  args: ["--test-scheduled"],
}).catch(async (error: unknown) => {
  print(String(error));
  await Promise.all([segment.close(), vero.close(), alerts.close()]);
  process.exit(1);
});

// The Worker's own verdict on its settings, read once: a secret under 32 characters, or a consumer that
// cannot deliver (a retry horizon past the queues' retention), stops the sandbox before anything is served.
const health = (await (await fetch(`${bridge.url}/health`)).json()) as {
  problems?: string[];
  consumersNotReady?: string[];
};
if (health.problems || health.consumersNotReady) {
  for (const problem of health.problems ?? []) print(`Cannot start: ${problem}`);
  if (health.consumersNotReady)
    print("\nThe queue consumers cannot deliver with these settings (wrangler.toml [vars]):");
  for (const reason of health.consumersNotReady ?? []) print(`  ${reason}`);
  await Promise.all([bridge.stop(), segment.close(), vero.close(), alerts.close()]);
  process.exit(1);
}

print(`\nReady on ${bridge.url}`);
print(`  Vero webhook URL:      ${bridge.url}/vero/webhook?token=${DEV_SECRETS.VERO_WEBHOOK_TOKEN}`);
print(`  Segment webhook URL:   ${bridge.url}/segment   (shared secret ${DEV_SECRETS.SEGMENT_SHARED_SECRET})`);
print(`  Console:               ${bridge.url}/admin   (sign in with ADMIN_TOKEN ${DEV_SECRETS.ADMIN_TOKEN})`);
print(`  Dead letters (JSON):   ${bridge.url}/admin/dead-letters   (Authorization: Bearer ${DEV_SECRETS.ADMIN_TOKEN})`);
print(`  Readiness:             ${bridge.url}/health/ready   (503 with the reasons when the bridge cannot do its job)`);
print(`  Hourly counters:       ${bridge.url}/admin/counters?since=<ISO time>   (same token)`);
print("The ledger (local D1, migrations applied at start) skips Vero calls already made for a messageId.");
print(
  "Inbound is queued (wrangler.toml binds SEGMENT_QUEUE): /vero/webhook answers 202, delivery to Segment follows within seconds. Outbound goes to each user's mailbox: /segment answers 202 (/v1/* 200, as Segment's API) once its events are delivered or stored for retry.",
);
print(`The alert cron runs every ${ALERT_CHECK_MS / 1000} s here; what the alert receiver gets is printed as "alert".`);
print("Every call the stand-ins receive is printed below. Ctrl-C stops everything.\n");

/** Sandbox only: runs the alert cron through wrangler's --test-scheduled route, as Cloudflare would every 5 minutes. */
const alertChecks = setInterval(() => {
  fetch(`${bridge.url}/__scheduled?cron=${encodeURIComponent(ALERT_CRON)}`)
    .then((response) => response.arrayBuffer())
    .catch((error: unknown) => print(`Alert check failed: ${String(error)}`));
}, ALERT_CHECK_MS);

/**
 * Sandbox only: a little traffic so that the console has something to show in its first minute. Real calls
 * through the bridge's routes: three Vero webhooks, two Segment events, and one Segment event the Vero
 * stand-in refuses once with a 400, which becomes a dead letter. SANDBOX_TRAFFIC=0 turns it off.
 */
async function sandboxTraffic(): Promise<void> {
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${bridge.url}${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json", ...headers },
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`POST ${path} answered ${response.status}`);
  };
  const segmentAuth = { authorization: `Basic ${btoa(`${DEV_SECRETS.SEGMENT_SHARED_SECRET}:`)}` };
  const now = Date.now();
  const user = (n: number) => ({ id: `sandbox-${n}`, email: `sandbox-${n}@example.com` });
  const campaign = { id: 1, name: "Sandbox welcome" };
  for (const [n, type] of (["sent", "opened", "clicked"] as const).entries()) {
    await post(`/vero/webhook?token=${DEV_SECRETS.VERO_WEBHOOK_TOKEN}`, {
      type,
      [`${type}_at`]: Math.floor(now / 1000),
      message_id: `sandbox-${now}-${n}`,
      user: user(n),
      campaign,
    });
  }
  const track = (n: number, event: string) => ({
    type: "track",
    messageId: `sandbox-${now}-track-${n}`,
    userId: `sandbox-${n}`,
    event,
    properties: { sandbox: true },
    timestamp: new Date(now).toISOString(),
  });
  await post("/segment", track(1, "Viewed product"), segmentAuth);
  await post(
    "/segment",
    {
      type: "identify",
      messageId: `sandbox-${now}-identify`,
      userId: "sandbox-2",
      traits: { email: "sandbox-2@example.com" },
      timestamp: new Date(now).toISOString(),
    },
    segmentAuth,
  );
  const veroStandIn = new StandInClient(vero.url);
  await veroStandIn.waitFor(DEV_SECRETS.VERO_AUTH_TOKEN, (calls) => calls.length >= 2, { timeoutMs: 30_000 });
  await veroStandIn.fail(DEV_SECRETS.VERO_AUTH_TOKEN, { status: 400, times: 1 });
  await post("/segment", track(3, "Sandbox: refused once on purpose"), segmentAuth);
  print("Sandbox: sent 3 Vero webhooks and 3 Segment events; Vero's stand-in refuses the last one (a dead letter).\n");
}

if (process.env.SANDBOX_TRAFFIC !== "0") {
  sandboxTraffic().catch((error: unknown) => print(`Sandbox traffic failed: ${String(error)}`));
}

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    clearInterval(alertChecks);
    await Promise.all([bridge.stop(), segment.close(), vero.close(), alerts.close()]);
  }
  process.exit(code);
}

process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
bridge.process.on("exit", (code) => void stop(code ?? 1));
