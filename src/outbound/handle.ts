/**
 * The outbound routes: body to events, each event validated and mapped,
 * the deliverable ones queued (VERO_QUEUE) or handed to their users'
 * mailboxes (queued only when they go to more users than one invocation
 * may call, and VERO_OVERFLOW_QUEUE is bound), and one answer that tells
 * Segment whether to retry (503), drop (400) or move on (2xx).
 */

import { Counters, writeCountsAfterAnswer } from "../delivery/counters.ts";
import { enqueueFailed, queueFor } from "../delivery/enqueue.ts";
import { applyFilters, type DestinationFilter } from "../shared/destination-filters.ts";
import { BridgeError, badRequest } from "../shared/errors.ts";
import type { AppContext } from "../shared/http.ts";
import { log, logSampled } from "../shared/log.ts";
import { type Contract, oversizedEvent, pastBatchLimit } from "./contract.ts";
import { enqueueJobs, veroJobOf } from "./enqueue.ts";
import { orderingKey } from "./job.ts";
import { acceptedTotals, handToMailboxes, MAILBOXES_PER_INVOCATION, mailboxConfigFor, usersOf } from "./mailboxes.ts";
import { mapSegmentEvent } from "./map.ts";
import { type EventOutcome, type EventResult, eventName, type RoutedEvent } from "./result.ts";
import {
  MAX_BATCH_EVENTS,
  messageIdOf,
  parseSegmentBody,
  parseSegmentEvent,
  SEGMENT_EVENT_TYPES,
  type SegmentEventType,
  segmentEventsOf,
} from "./schema.ts";

// Enough to find a request's events in the logs without writing out a whole batch.
const LOGGED_MESSAGE_IDS = 50;

export async function handleSegmentRequest(
  c: AppContext,
  contract: Contract,
  impliedType?: SegmentEventType,
): Promise<Response> {
  const started = Date.now();
  const route = c.req.path;
  const trackingApi = contract === "tracking-api";
  // Before the body is read: queue mode without the ledger (its dead letters) is a 503 naming the binding.
  const queue = queueFor(c.env, "VERO_QUEUE");
  // Segment's API refuses the events past its batch limit one by one (pastBatchLimit), not the request.
  const maxEvents = trackingApi ? Number.POSITIVE_INFINITY : MAX_BATCH_EVENTS;
  const parsedBody = c.get("parsedBody");
  const body =
    parsedBody === undefined ? parseSegmentBody(await c.req.text(), maxEvents) : segmentEventsOf(parsedBody, maxEvents);
  const refuse = (error: string) => {
    log("info", "outbound request refused", { route, status: 400, error });
    return badRequest(error);
  };
  if (!body.ok) throw refuse(body.error);
  // Segment's API answers an empty batch 200, with nothing to do; its Webhooks destination never sends one.
  if (body.events.length === 0 && !trackingApi) throw refuse("the request holds no events");

  const receivedAt = new Date();
  const { filters, anonymousIds } = c.get("outbound");
  const options = { receivedAt, filters, anonymousIds, impliedType, trackingApi };
  const jobs = body.events.map((input, index) => routeEvent(input, index, options));

  let enqueuedTo = queue;
  if (queue) await enqueueJobs(queue, jobs);
  else enqueuedTo = await handToUsersMailboxes(c, jobs);
  // Counted after the hand-over, which refuses an event too large for a queue message.
  const counters = new Counters();
  for (const [index, job] of jobs.entries()) {
    if (job.result.outcome === "invalid")
      counters.add("outbound", refusedName(body.events[index], impliedType), "refused");
    // Counted under the filter's title: the console's flow then says which filter holds events back.
    if (job.result.outcome === "filtered" && job.result.filter) counters.add("outbound", job.result.filter, "filtered");
  }
  writeCountsAfterAnswer(c.executionCtx, c.env.LEDGER, counters, "refused or filtered events");
  const results = jobs.map((job) => job.result);
  const count = (outcome: EventOutcome) => results.filter((result) => result.outcome === outcome).length;
  const failed = results.filter((result) => result.outcome === "failed");
  const status = answerStatus(contract, results);

  const messageIds = results.map(eventName);
  const ok = status === 200 || status === 202;
  const refusals = count("invalid") + failed.length;
  const line = {
    route,
    status,
    outcome: ok ? "ok" : status === 503 ? "retry" : "refused",
    events: results.length,
    delivered: count("delivered"),
    queued: count("queued"),
    skipped: count("skipped"),
    filtered: count("filtered"),
    invalid: count("invalid"),
    failed: failed.length,
    messageIds: messageIds.slice(0, LOGGED_MESSAGE_IDS),
    // Errors may quote an email from the payload: log() fingerprints it.
    errors: results.flatMap((result) => (result.error ? [result.error] : [])).slice(0, 5),
    durationMs: Date.now() - started,
  };
  // A refused event is logged always, also when its request is accepted.
  if (ok && refusals === 0)
    logSampled(
      results.map((result) => result.messageId),
      "outbound request",
      line,
    );
  else log("warn", "outbound request", line);

  if (ok && trackingApi) return c.json({ success: true as const, ok: true as const, results }, 200);
  if (ok) return c.json({ ok: true as const, results }, status);
  const details = { results };
  if (status === 503 && enqueuedTo) throw enqueueFailed(firstError(failed, true), details);
  if (status === 503)
    throw new BridgeError(503, "mailbox_unavailable", `${firstError(failed, true)}; retry later`, { details });
  throw new BridgeError(400, "invalid_event", describeInvalid(results), { details });
}

export interface RouteOptions {
  receivedAt: Date;
  filters: readonly DestinationFilter[];
  anonymousIds: boolean;
  impliedType?: SegmentEventType;
  /** Segment's HTTP API's per-event limits apply (the `/v1/*` routes). */
  trackingApi?: boolean;
}

/**
 * One event of a request, validated, filtered and mapped: its result so far
 * and the Vero calls it needs. The routes and the event tester share it, so
 * the tester shows exactly what the routes would do.
 */
export function routeEvent(input: unknown, index: number, options: RouteOptions): RoutedEvent {
  const { receivedAt, filters, anonymousIds, impliedType, trackingApi } = options;
  const result: EventResult = { messageId: messageIdOf(input), index, outcome: "invalid" };
  const fallbackUser = `#${index}`;
  const pastLimit = trackingApi ? pastBatchLimit(index) : undefined;
  if (pastLimit) return { result: { ...result, error: pastLimit }, requests: [], user: fallbackUser };
  const parsed = parseSegmentEvent(input, impliedType);
  if (!parsed.ok) return { result: { ...result, error: parsed.error }, requests: [], user: fallbackUser };
  // Measured only now: parsing has checked the depth that re-serialising it needs.
  const tooLarge = trackingApi ? oversizedEvent(input) : undefined;
  if (tooLarge) return { result: { ...result, error: tooLarge }, requests: [], user: fallbackUser };
  const decision = applyFilters(filters, parsed.event);
  if (!decision.kept) {
    const reason = `destination filter "${decision.by}" (${decision.action === "DROP" ? "drop" : "sampled out"})`;
    return {
      result: { ...result, outcome: "filtered", filter: decision.by, reason },
      requests: [],
      user: fallbackUser,
    };
  }
  const event = decision.event as typeof parsed.event;
  const mapped = mapSegmentEvent(event, { receivedAt, anonymousIds });
  const user = orderingKey(event, fallbackUser, anonymousIds);
  if (mapped.outcome === "invalid") return { result: { ...result, error: mapped.error }, requests: [], user };
  if (mapped.outcome === "skip")
    return { result: { ...result, outcome: "skipped", reason: mapped.reason }, requests: [], user };
  const editedBy = decision.changedBy.length > 0 ? { editedBy: decision.changedBy } : {};
  return { result: { ...result, outcome: "failed" }, requests: mapped.requests, user, ...editedBy };
}

/**
 * Without VERO_QUEUE: each user's events go to the user's mailbox (one call
 * per user, in parallel), and the route answers once the mailboxes have
 * committed them, which makes them durable. A mailbox that could not take
 * its user's events leaves them failed and retryable (503): Segment sends
 * the request again, and the mailboxes skip what they already hold.
 * Returns the queue when the request went to more users than one
 * invocation may call and was enqueued whole instead.
 */
async function handToUsersMailboxes(c: AppContext, jobs: RoutedEvent[]): Promise<Queue<unknown> | undefined> {
  const deliverable = jobs.filter((job) => job.requests.length > 0);
  if (deliverable.length === 0) return undefined;
  const ready = mailboxConfigFor(c.env);
  if (!ready.ok) throw new BridgeError(503, "not_configured", ready.reason);
  const users = usersOf(deliverable);
  if (users > MAILBOXES_PER_INVOCATION) {
    // Each user is a Durable Object call, and an invocation's calls are limited: the queue's consumer hands them on.
    const overflow = queueFor(c.env, "VERO_OVERFLOW_QUEUE");
    if (overflow) {
      await enqueueJobs(overflow, jobs);
      logSampled(
        deliverable.map((job) => job.result.messageId),
        "outbound request enqueued: too many users for one hand-over",
        { route: c.req.path, users, limit: MAILBOXES_PER_INVOCATION, events: deliverable.length },
      );
      return overflow;
    }
    // A re-send would fail the same way.
    throw new BridgeError(
      413,
      "too_many_users",
      `the request's events go to ${users} users, over the ${MAILBOXES_PER_INVOCATION} one request can hand on without a queue; send smaller batches, or bind VERO_OVERFLOW_QUEUE or VERO_QUEUE`,
      { details: { users, limit: MAILBOXES_PER_INVOCATION } },
    );
  }
  const at = Date.now();
  const items = deliverable.map((job, seq) => ({ job, letter: { job: veroJobOf(job, at, seq) } }));
  const handed = await handToMailboxes(c.env, ready, items, ({ letter }) => letter);
  for (const group of handed) {
    for (const { job } of group.items) {
      if (group.ok) {
        job.result.outcome = "queued";
        continue;
      }
      job.result.outcome = "failed";
      job.result.retryable = true;
      job.result.error = `the user's mailbox did not take the event: ${group.error}`;
    }
  }
  const failedUsers = handed.filter((group) => !group.ok).length;
  const { doRowsRead, doRowsWritten, alarmsSet, delivered, veroCalls } = acceptedTotals(handed);
  const line = {
    route: c.req.path,
    events: deliverable.length,
    users,
    failedUsers,
    d1Statements: 0,
    doRequests: handed.length,
    doRowsRead,
    doRowsWritten,
    alarmsSet,
    // Delivered within the hand-over: the users' mailboxes held nothing before these events.
    delivered,
    veroCalls,
  };
  // A clean hand-over is a success line, sampled by the events' messageIds.
  if (failedUsers === 0)
    logSampled(
      deliverable.map((job) => job.result.messageId),
      "outbound handed to mailboxes",
      line,
    );
  else log("warn", "outbound handed to mailboxes", line);
  return undefined;
}

/**
 * The answer's status, from the events' outcomes: 503 when a retry may
 * deliver what failed. Otherwise Segment's API answers 200 whatever it
 * refused (its libraries retry anything else), and the webhook route 400
 * when it delivered nothing (Segment drops the request), 202 when it
 * queued, else 200.
 */
function answerStatus(contract: Contract, results: EventResult[]): 200 | 202 | 400 | 503 {
  const failed = results.filter((result) => result.outcome === "failed");
  if (failed.some((result) => result.retryable)) return 503;
  if (contract === "tracking-api") return 200;
  if (failed.length > 0 || results.every((result) => result.outcome === "invalid")) return 400;
  return results.some((result) => result.outcome === "queued") ? 202 : 200;
}

/** What a refused event is counted under: its type, or "(unknown)" when it has none the bridge knows. */
function refusedName(input: unknown, impliedType?: SegmentEventType): string {
  const type = impliedType ?? (input as { type?: unknown } | null)?.type;
  return (SEGMENT_EVENT_TYPES as readonly unknown[]).includes(type) ? `${type}` : "(unknown)";
}

function firstError(failed: EventResult[], retryable: boolean): string {
  const first = failed.find((result) => result.retryable === retryable);
  const message = first?.error ?? "Vero did not take the event";
  return failed.length === 1 ? message : `${failed.length} events failed; first: ${message}`;
}

function describeInvalid(results: EventResult[]): string {
  const first = results[0];
  if (results.length === 1 && first?.error) return first.error;
  const named = results.map((result) => `${eventName(result)}: ${result.error}`);
  return `none of the ${results.length} events is deliverable: ${named.slice(0, 3).join("; ")}${results.length > 3 ? "; ..." : ""}`;
}
