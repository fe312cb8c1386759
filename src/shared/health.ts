import type { Env } from "./env.ts";
import { describeUnready, settingsFor } from "./settings.ts";
import { VERSION } from "./version.ts";

/** What `GET /health` answers, and what the console's status panel shows. */
export function healthOf(env: Env) {
  const settings = settingsFor(env);
  return {
    status: "ok" as const,
    version: VERSION,
    inbound: settings.inbound.ready,
    outbound: settings.outbound.ready,
    // The queue consumers need only their own upstream's settings, so they can be ready while a route is closed.
    consumers: { segment: settings.consumers.segment.ready, vero: settings.consumers.vero.ready },
    ...consumersNotReady(settings.consumers),
    // Whether re-sent events are recognised (the LEDGER binding): without it Vero may receive them twice.
    dedup: env.LEDGER !== undefined,
  };
}

/** Why a consumer cannot deliver, setting names only: the same sentences its batches log. */
function consumersNotReady({ segment, vero }: ReturnType<typeof settingsFor>["consumers"]) {
  const reasons = [
    ...(segment.ready ? [] : [describeUnready("the Segment consumer", segment)]),
    ...(vero.ready ? [] : [describeUnready("the Vero consumer", vero)]),
  ];
  return reasons.length > 0 ? { consumersNotReady: reasons } : {};
}

export type Health = ReturnType<typeof healthOf>;
