import type { Env } from "./env.ts";
import { describeUnready, settingsFor } from "./settings.ts";
import { VERSION } from "./version.ts";

/** What `GET /health` answers, and what the console's status panel shows. */
export function healthOf(env: Env) {
  const settings = settingsFor(env);
  // Which settings to fix, by name only (never a value): e.g. a secret shorter than its minimum.
  const problems = (["inbound", "outbound", "admin"] as const).flatMap((name) => {
    const state = settings[name];
    return !state.ready && state.invalid.length > 0 ? [describeUnready(name, state)] : [];
  });
  return {
    status: "ok" as const,
    version: VERSION,
    inbound: settings.inbound.ready,
    outbound: settings.outbound.ready,
    // The queue consumers need only their own upstream's settings, so they can be ready while a route is closed.
    consumers: { segment: settings.consumers.segment.ready, vero: settings.consumers.vero.ready },
    // Whether re-sent events are recognised (the LEDGER binding): without it Vero may receive them twice.
    dedup: env.LEDGER !== undefined,
    ...(problems.length > 0 ? { problems } : {}),
  };
}

export type Health = ReturnType<typeof healthOf>;
