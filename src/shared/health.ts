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
    // Whether re-sent events are recognised: the mailboxes (MAILBOX) keep the ledger of calls Vero accepted.
    dedup: env.MAILBOX !== undefined,
  };
}

export type Health = ReturnType<typeof healthOf>;
