import type { TestProject } from "vitest/node";
import { DEV_SECRETS } from "../dev/dev-settings.ts";
import { startAlertStandIn } from "../dev/stand-ins/alerts.ts";
import { startSegmentStandIn } from "../dev/stand-ins/segment.ts";
import { startVeroStandIn } from "../dev/stand-ins/vero.ts";

/** Starts the stand-ins once per test project; the Worker reaches them over real HTTP. */
export default async function setup(project: TestProject) {
  const segment = await startSegmentStandIn({ tenants: [DEV_SECRETS.SEGMENT_WRITE_KEY] });
  const vero = await startVeroStandIn({ tenants: [DEV_SECRETS.VERO_AUTH_TOKEN] });
  project.provide("segmentOrigin", segment.url);
  project.provide("veroOrigin", vero.url);
  const alerts = await startAlertStandIn();
  project.provide("alertsOrigin", alerts.url);
  // workerd cannot see the shell's environment: the fuzz suites' replay settings travel this way.
  project.provide("fuzz", {
    seed: process.env.FUZZ_SEED ?? "",
    path: process.env.FUZZ_PATH ?? "",
    runs: process.env.FUZZ_RUNS ?? "",
  });
  return async () => {
    await Promise.all([segment.close(), vero.close(), alerts.close()]);
  };
}
