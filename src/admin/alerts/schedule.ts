/** The alerts' Cron Trigger, as wrangler.toml lists it and `scheduled()` dispatches on it. */

/** Every 5 minutes: the failure rate's 15-minute window is seen three times. */
export const ALERT_CRON = "*/5 * * * *";
