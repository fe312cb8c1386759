/**
 * The Worker's bindings, typed once. Every value is optional because a
 * deployment may configure only one direction; `settings.ts` decides what is
 * usable. Without the queue bindings the routes deliver inline.
 */
export interface Env {
  /** Secret: the write key of the Segment source that receives Vero's events. */
  SEGMENT_WRITE_KEY?: string;
  /** Var: Segment's Tracking API origin (EU: https://events.eu1.segmentapis.com). */
  SEGMENT_API_HOST?: string;
  /** Secret: the `token` query parameter Vero's webhook URL carries. */
  VERO_WEBHOOK_TOKEN?: string;
  /** Secret: Vero's classic auth token, sent as `auth_token`. */
  VERO_AUTH_TOKEN?: string;
  /** Secret: Vero's newer tracking API key, sent as `tracking_api_key`. */
  VERO_TRACKING_API_KEY?: string;
  /** Var: the base URL of Vero's Track API v2. */
  VERO_API_URL?: string;
  /** Secret: shared between Segment's Webhooks destination and the bridge. */
  SEGMENT_SHARED_SECRET?: string;
  /** Secret: bearer token of the `/admin` routes (dead letters). */
  ADMIN_TOKEN?: string;
  /** Queue of Segment-bound messages (inbound); bound: routes enqueue and answer 202. */
  SEGMENT_QUEUE?: Queue<unknown>;
  /** Queue of Vero-bound jobs (outbound); bound: routes enqueue and answer 202. */
  VERO_QUEUE?: Queue<unknown>;
  /** Var: the queue consumers' first retry delay in seconds (default 5), doubling per attempt. */
  QUEUE_RETRY_BASE_SECONDS?: string;
  /**
   * The delivery ledger (D1): the Vero calls Vero accepted (so re-sent events are not repeated), dead letters
   * and hourly counters. Queue mode needs it for its dead letters.
   */
  LEDGER?: D1Database;
  /** Var: how many days the ledger keeps recorded calls and counters (default 7, at least 7). */
  LEDGER_RETENTION_DAYS?: string;
  /** Var: how long the consumers retry a message before it becomes a dead letter (default 26). */
  QUEUE_RETRY_HORIZON_HOURS?: string;
  /** Var: the message retention set on the queues (default 96, Workers Paid's default; Free keeps 24). */
  QUEUE_RETENTION_HOURS?: string;
  /** Var: inline mode's most Vero calls per request (default 50, the Workers Free plan's subrequests). */
  INLINE_MAX_VERO_CALLS?: string;
  /** Var or secret: the share of messageIds whose success lines are logged, 0 to 1 (default 0.01). */
  LOG_SAMPLE_RATE?: string;
}
