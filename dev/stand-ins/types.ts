/** Shapes shared by the stand-in servers (Node) and their client (Node and workerd). */

export interface RecordedCall {
  service: "segment" | "vero" | "alerts";
  method: string;
  path: string;
  /** The status the stand-in answered; 0 when it closed the connection instead (`drop`). */
  status: number;
  /** The parsed JSON body, or the raw text when it did not parse. */
  body: unknown;
  /** What the stand-in answered. */
  response: unknown;
  at: number;
}

/**
 * Makes a tenant's calls fail. With `times`, the next N calls fail; with
 * `rate`, each call fails with that probability (seeded, so repeatable);
 * with neither, every call fails until the plan is cleared. `after` lets
 * that many calls through first. `statuses` fails with one of several
 * statuses, picked by the same seeded generator. `delayMs` slows every call
 * down, with or without a `status`. `drop` does calls without answering them.
 */
export interface FailurePlan {
  status?: number;
  /** Instead of `status`: each failure picks one of these (seeded). */
  statuses?: number[];
  /** Calls that succeed before the plan starts failing. */
  after?: number;
  times?: number;
  rate?: number;
  seed?: number;
  /** Seconds, sent as `Retry-After` (useful with 429). */
  retryAfter?: number;
  delayMs?: number;
  /**
   * The next N calls are carried out but never answered: the connection is
   * closed instead (recorded with status 0). The answer a timeout loses.
   */
  drop?: number;
}

/** A tenant's calls received and not yet answered: `now`, and `max`, the most at once since its calls were last cleared. */
export interface InFlight {
  now: number;
  max: number;
}

/** What the Vero stand-in answers, with a 404, to a delete of a user it does not have (Vero's `{ status, message }`). */
export const VERO_USER_NOT_FOUND = "User not found.";
