/**
 * The development settings `npm start` and the tests give the Worker. They
 * are not secrets: they only open the local stand-ins, which know them.
 */
export const DEV_SECRETS = {
  SEGMENT_WRITE_KEY: "dev-segment-write-key",
  VERO_WEBHOOK_TOKEN: "dev-vero-webhook-token-for-local-use",
  VERO_AUTH_TOKEN: "dev-vero-auth-token",
  SEGMENT_SHARED_SECRET: "dev-segment-shared-secret-for-local-use",
  ADMIN_TOKEN: "dev-admin-token-for-the-local-console",
} as const;

/** The Worker's settings pointing at stand-ins running at these origins. */
export function devBindings(segmentOrigin: string, veroOrigin: string) {
  return {
    ...DEV_SECRETS,
    SEGMENT_API_HOST: segmentOrigin,
    VERO_API_URL: `${veroOrigin}/api/v2`,
    // The local console shows outbound counts within seconds; production waits a minute, which costs less.
    COUNTS_REPORT_SECONDS: "5",
  };
}

/**
 * The development settings without the sandbox's own timings, so that the
 * Worker runs with its production defaults: what the benchmarks count.
 */
export function deployedBindings(segmentOrigin: string, veroOrigin: string) {
  const { COUNTS_REPORT_SECONDS: _sandboxOnly, ...bindings } = devBindings(segmentOrigin, veroOrigin);
  return bindings;
}
