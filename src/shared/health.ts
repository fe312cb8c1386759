import type { Env } from "./env.ts";
import { settingsFor } from "./settings.ts";
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
    // Whether re-sent events are recognised (the LEDGER binding): without it Vero may receive them twice.
    dedup: env.LEDGER !== undefined,
    // SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: whether /segment takes an array signed over its first event alone.
    firstEventSignatures:
      settings.outbound.ready && settings.outbound.settings.acceptFirstEventSignature
        ? ("accepted (weaker)" as const)
        : ("refused" as const),
  };
}

export type Health = ReturnType<typeof healthOf>;
