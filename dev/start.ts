/**
 * `npm start`: the bridge under `wrangler dev` on http://127.0.0.1:8787,
 * wired to local stand-ins of Segment and Vero, printing every call they
 * receive. No account and no credentials needed: nothing leaves this machine.
 */
import { startBridge } from "./bridge.ts";
import { DEV_SECRETS, devBindings } from "./dev-settings.ts";
import { formatCall } from "./format-call.ts";
import type { StandIn } from "./stand-ins/harness.ts";
import { startSegmentStandIn } from "./stand-ins/segment.ts";
import { startVeroStandIn } from "./stand-ins/vero.ts";

const BRIDGE_PORT = Number(process.env.PORT ?? 8787);
const SEGMENT_PORT = Number(process.env.SEGMENT_STAND_IN_PORT ?? 8790);
const VERO_PORT = Number(process.env.VERO_STAND_IN_PORT ?? 8791);

const print = (line: string) => process.stdout.write(`${line}\n`);

async function listen(start: (port: number) => Promise<StandIn>, port: number): Promise<StandIn> {
  try {
    return await start(port);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
    print(`port ${port} is taken; the stand-in takes a free one instead`);
    return start(0);
  }
}

const segment = await listen(
  (port) =>
    startSegmentStandIn({ tenants: [DEV_SECRETS.SEGMENT_WRITE_KEY], onCall: (call) => print(formatCall(call)) }, port),
  SEGMENT_PORT,
);
const vero = await listen(
  (port) =>
    startVeroStandIn({ tenants: [DEV_SECRETS.VERO_AUTH_TOKEN], onCall: (call) => print(formatCall(call)) }, port),
  VERO_PORT,
);

print(`Segment stand-in: ${segment.url}   (write key ${DEV_SECRETS.SEGMENT_WRITE_KEY})`);
print(`Vero stand-in:    ${vero.url}/api/v2   (auth_token ${DEV_SECRETS.VERO_AUTH_TOKEN})`);
print(`Bridge:           http://127.0.0.1:${BRIDGE_PORT}   (starting wrangler dev...)`);

const bridge = await startBridge({ vars: devBindings(segment.url, vero.url), port: BRIDGE_PORT }).catch(
  async (error: unknown) => {
    print(String(error));
    await Promise.all([segment.close(), vero.close()]);
    process.exit(1);
  },
);

print(`\nReady on ${bridge.url}`);
print(`  Vero webhook URL:      ${bridge.url}/vero/webhook?token=${DEV_SECRETS.VERO_WEBHOOK_TOKEN}`);
print(`  Segment webhook URL:   ${bridge.url}/segment   (shared secret ${DEV_SECRETS.SEGMENT_SHARED_SECRET})`);
print(`  Dead letters:          ${bridge.url}/admin/dead-letters   (Authorization: Bearer ${DEV_SECRETS.ADMIN_TOKEN})`);
print(`  Hourly counters:       ${bridge.url}/admin/counters?since=<ISO time>   (same token)`);
print("The ledger (local D1, migrations applied at start) skips Vero calls already made for a messageId.");
print(
  "Both directions are queued (wrangler.toml binds the queues): routes answer 202, delivery follows within seconds.",
);
print("Every call the stand-ins receive is printed below. Ctrl-C stops everything.\n");

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.all([bridge.stop(), segment.close(), vero.close()]);
  }
  process.exit(code);
}

process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
bridge.process.on("exit", (code) => void stop(code ?? 1));
