// What test/global-setup.ts provides to every test project (origins of the running stand-ins).
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    segmentOrigin: string;
    veroOrigin: string;
    /** The alert receiver stand-in (dev/stand-ins/alerts.ts); its webhooks are `${origin}/hooks/<tenant>`. */
    alertsOrigin: string;
    /** FUZZ_SEED, FUZZ_PATH and FUZZ_RUNS from the shell ("" when unset), for test/worker/helpers/fuzz.ts. */
    fuzz: { seed: string; path: string; runs: string };
  }
}
