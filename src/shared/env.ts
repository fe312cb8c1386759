/**
 * The Worker's bindings. Those wrangler.toml declares are typed by
 * `wrangler types` into worker-configuration.d.ts (`npm run types` after a
 * change to wrangler.toml; `npm test` fails while it is stale). Secrets are
 * never in wrangler.toml, so wrangler cannot know them: they, and vars left
 * to their defaults there, are declared below.
 *
 * Every binding is optional: a deployment may configure one direction, and
 * without the queue bindings the routes deliver inline; settings.ts decides
 * what is usable.
 */
interface Undeclared {
  /** Binding, not in wrangler.toml as shipped: bound, the outbound routes enqueue rather than hand events to the mailboxes. */
  VERO_QUEUE: Queue;
  /** Secret: the write key of the Segment source that receives Vero's events. */
  SEGMENT_WRITE_KEY: string;
  /** Secret: the `token` query parameter Vero's webhook URL carries. */
  VERO_WEBHOOK_TOKEN: string;
  /** Secret: Vero's classic auth token, sent as `auth_token`. */
  VERO_AUTH_TOKEN: string;
  /** Secret: Vero's newer tracking API key, sent as `tracking_api_key`. */
  VERO_TRACKING_API_KEY: string;
  /** Secret: shared between Segment's Webhooks destination and the bridge. */
  SEGMENT_SHARED_SECRET: string;
  /** Secret: bearer token of the `/admin` routes (dead letters). */
  ADMIN_TOKEN: string;
  /** Var: a name for the Vero project, for operators who send to several; with VERO_API_URL it names the mailboxes. */
  VERO_ACCOUNT: string;
  /** Var: track calls of one user in flight at once between two calls that change the user, 1 to 6 (default "1", strict order). */
  VERO_TRACK_CONCURRENCY: string;
  /** Var: the queue consumers' first retry delay in seconds (default 5), doubling per attempt. */
  QUEUE_RETRY_BASE_SECONDS: string;
  /** Var: how many days the ledger keeps recorded calls and counters (default 7, at least 7). */
  LEDGER_RETENTION_DAYS: string;
  /** Var: how long the consumers retry a message before it becomes a dead letter (default 26). */
  QUEUE_RETRY_HORIZON_HOURS: string;
  /** Var: the message retention set on the queues (default 96, Workers Paid's default; Free keeps 24). */
  QUEUE_RETENTION_HOURS: string;
  /** Var: "true" lets a JSON array on /segment go by an X-Signature over its first event alone (default "false"). */
  SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: string;
  /** Var (JSON): Segment's Destination Filters for this destination, as its Public API lists them. */
  DESTINATION_FILTERS: string;
  /** Var: Vero webhook types not forwarded to Segment, comma-separated (e.g. "sent,delivered"). */
  VERO_WEBHOOK_TYPES_DROPPED: string;
  /** Var: "true" lets an event without userId or email go by its anonymousId as Vero's id (default "false"). */
  VERO_ANONYMOUS_IDS: string;
  /** Var or secret: the share of messageIds whose success lines are logged, 0 to 1 (default 0.01). */
  LOG_SAMPLE_RATE: string;
  /** Var: how long a mailbox's outbound counts wait for their report, in seconds (default 60). */
  COUNTS_REPORT_SECONDS: string;
  /** Secret: where the alert cron posts (Slack, Discord, PagerDuty, any JSON receiver); unset, alerts are off. */
  ALERT_WEBHOOK_URL: string;
  /** Var: the alerts' body, `chat` (default, Slack and Discord), `json` or `pagerduty`. */
  ALERT_WEBHOOK_FORMAT: string;
  /** Secret: PagerDuty's integration (routing) key, with ALERT_WEBHOOK_FORMAT = "pagerduty". */
  ALERT_ROUTING_KEY: string;
  /** Var: a direction's 15-minute failure share that alerts, above 0 to 1 (default 0.2). */
  ALERT_FAILURE_RATE: string;
  /** Var: the fewest attempts in 15 minutes for a failure rate to count (default 20). */
  ALERT_MIN_ATTEMPTS: string;
  /** Var: minutes a user's oldest pending job may wait before it alerts (default 60). */
  ALERT_STALLED_MINUTES: string;
  /** Var: minutes before a persisting condition is sent again (default 240). */
  ALERT_REPEAT_MINUTES: string;
  /** Var: seconds a direction's p95 delivery latency over 15 minutes may reach before it alerts (default 300). */
  ALERT_LATENCY_SECONDS: string;
  /** Var: the bridge's public origin, for the alerts' links to the console. */
  PUBLIC_URL: string;
  /** Var, development only: a token `GET /health` repeats as `instance`, so that a tool that started the bridge knows it reached its own. */
  BRIDGE_INSTANCE: string;
}

export type Env = Partial<Cloudflare.Env & Undeclared>;
