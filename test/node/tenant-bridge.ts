import { inject } from "vitest";
import { type RunningBridge, startBridge } from "../../dev/bridge.ts";
import { devBindings } from "../../dev/dev-settings.ts";
import { StandInClient } from "../../dev/stand-ins/client.ts";

export interface TenantBridge {
  bridge: RunningBridge;
  writeKey: string;
  veroToken: string;
}

/**
 * The bridge under wrangler dev with stand-in tenants of its own, so that what the stand-ins record belongs to
 * its test. QUEUE_RETRY_BASE_SECONDS=1 (the least allowed) retries within seconds.
 */
export async function bridgeWithTenants(
  adminToken: string,
  config?: string,
  /** More vars (or other values for the ones below) and wrangler dev arguments. */
  extra: { vars?: Record<string, string>; args?: string[] } = {},
): Promise<TenantBridge> {
  const segment = new StandInClient(inject("segmentOrigin"));
  const vero = new StandInClient(inject("veroOrigin"));
  const [writeKey, veroToken] = await Promise.all([segment.tenant(), vero.tenant()]);
  const bridge = await startBridge({
    config,
    // Another config is a copy of the project's: its ledger needs the schema as much.
    migrate: true,
    vars: {
      ...devBindings(segment.origin, vero.origin),
      SEGMENT_WRITE_KEY: writeKey,
      VERO_AUTH_TOKEN: veroToken,
      ADMIN_TOKEN: adminToken,
      QUEUE_RETRY_BASE_SECONDS: "1",
      ...extra.vars,
    },
    args: extra.args,
    stdio: "ignore",
  });
  return { bridge, writeKey, veroToken };
}
