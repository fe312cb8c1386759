// Kept in step with package.json by test/worker/shared/health.test.ts.
export const VERSION = "0.2.0";

/** The name Segment sees in `context.integration`; outbound uses it to spot its own echoes. */
export const INTEGRATION_NAME = "vero-segment-bridge";
