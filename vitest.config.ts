import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { devBindings } from "./dev/dev-settings.ts";

export default defineConfig({
  test: {
    // The JSON report lets .ci/run print one "N passed, N failed" line; dots keep a passing run on one screen.
    reporters: ["dot", ["json", { outputFile: ".vitest/results.json" }]],
    // The Worker logs a JSON line per request and delivery: shown for a failing test, hidden otherwise.
    // Tests that assert on log lines capture them with a spy on console, which this leaves alone.
    silent: "passed-only",
    projects: [
      {
        // Tests of the Worker, run inside workerd against the stand-ins.
        plugins: [
          cloudflareTest(async ({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            // workerd logs every failed outgoing fetch as an "uncaught exception" even when the code handles it.
            verbose: false,
            miniflare: {
              // wrangler.toml ships outbound without a queue; the tests of queue mode bind it as an operator would.
              queueProducers: { VERO_QUEUE: { queueName: "vero-segment-bridge-vero" } },
              bindings: {
                ...devBindings(inject("segmentOrigin"), inject("veroOrigin")),
                // The ledger's schema, applied by test/worker/helpers/apply-migrations.ts before any test runs.
                TEST_MIGRATIONS: await readD1Migrations("./migrations"),
              },
            },
          })),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          globalSetup: ["test/global-setup.ts"],
          setupFiles: ["test/worker/helpers/apply-migrations.ts"],
        },
      },
      {
        // Node-side tests: the stand-ins' own rules, official SDKs against the bridge.
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/global-setup.ts"],
        },
      },
      {
        // The console in a real browser: Chromium (Debian's package, or CHROMIUM_PATH) driven by playwright-core.
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/global-setup.ts"],
          // One wrangler dev and one browser at a time: the machine is shared with the other projects.
          fileParallelism: false,
        },
      },
    ],
  },
});
