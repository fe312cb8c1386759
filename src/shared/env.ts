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
  /** Var: the queue consumers' first retry delay in seconds (default 5), doubling per attempt. */
  QUEUE_RETRY_BASE_SECONDS: string;
  /** Var: how many days the ledger keeps recorded calls and counters (default 7, at least 7). */
  LEDGER_RETENTION_DAYS: string;
  /** Var: how long the consumers retry a message before it becomes a dead letter (default 26). */
  QUEUE_RETRY_HORIZON_HOURS: string;
  /** Var: the message retention set on the queues (default 96, Workers Paid's default; Free keeps 24). */
  QUEUE_RETENTION_HOURS: string;
  /** Var or secret: the share of messageIds whose success lines are logged, 0 to 1 (default 0.01). */
  LOG_SAMPLE_RATE: string;
}

export type Env = Partial<Cloudflare.Env & Undeclared>;
