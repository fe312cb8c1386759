/**
 * The inline outbound route: body to events, each event validated, mapped
 * and delivered on its own, and one answer that tells Segment whether to
 * retry (503), drop (400) or move on (200).
 */

import { Counters } from "../delivery/ledger.ts";
import { enqueueFailed, queueFor } from "../shared/enqueue.ts";
import { BridgeError, badRequest, type DeliveryError } from "../shared/errors.ts";
import type { AppContext } from "../shared/http.ts";
import { describeError, log, logSampled } from "../shared/log.ts";
import { CallLedger, callName } from "./calls.ts";
import { type Contract, oversizedEvent, pastBatchLimit } from "./contract.ts";
import { enqueueJobs } from "./enqueue.ts";
import { orderingKey } from "./job.ts";
import { mapSegmentEvent } from "./map.ts";
import { type EventOutcome, type EventResult, eventName, type Job } from "./result.ts";
import {
  MAX_BATCH_EVENTS,
  messageIdOf,
  parseSegmentBody,
  parseSegmentEvent,
  SEGMENT_EVENT_TYPES,
  type SegmentEventType,
} from "./schema.ts";
import { refuseOverInlineCap } from "./vero.ts";

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
  const body = parseSegmentBody(await c.req.text(), trackingApi ? Number.POSITIVE_INFINITY : MAX_BATCH_EVENTS);
  if (!body.ok) {
    log("info", "outbound request refused", { route, status: 400, error: body.error });
    throw badRequest(body.error);
  }

  const receivedAt = new Date();
  const jobs: Job[] = body.events.map((input, index) => {
    const result: EventResult = { messageId: messageIdOf(input), index, outcome: "invalid" };
    const fallbackUser = `#${index}`;
    const pastLimit = trackingApi ? pastBatchLimit(index) : undefined;
    if (pastLimit) return { result: { ...result, error: pastLimit }, requests: [], user: fallbackUser };
    const parsed = parseSegmentEvent(input, impliedType);
    if (!parsed.ok) return { result: { ...result, error: parsed.error }, requests: [], user: fallbackUser };
    // Measured only now: parsing has checked the depth that re-serialising it needs.
    const tooLarge = trackingApi ? oversizedEvent(input) : undefined;
    if (tooLarge) return { result: { ...result, error: tooLarge }, requests: [], user: fallbackUser };
    const mapped = mapSegmentEvent(parsed.event, { receivedAt });
    const user = orderingKey(parsed.event, fallbackUser);
    if (mapped.outcome === "invalid") return { result: { ...result, error: mapped.error }, requests: [], user };
    if (mapped.outcome === "skip")
      return { result: { ...result, outcome: "skipped", reason: mapped.reason }, requests: [], user };
    return { result: { ...result, outcome: "failed" }, requests: mapped.requests, user };
  });

  const counters = new Counters();
  for (const [index, job] of jobs.entries())
    if (job.result.outcome === "invalid")
      counters.add("outbound", refusedName(body.events[index], impliedType), "refused");
  let retryAfter: number | undefined;
  if (queue) {
    await enqueueJobs(queue, jobs);
    writeCounters(c, counters);
  } else {
    refuseOverInlineCap(
      jobs.map((job) => job.requests.length),
      c.get("outbound").inlineMaxVeroCalls,
    );
    retryAfter = await deliver(c, jobs, counters);
  }
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
  if (status === 503 && queue) throw enqueueFailed(firstError(failed, true), details);
  if (status === 503) {
    throw new BridgeError(503, "vero_unavailable", `${firstError(failed, true)}; retry later`, {
      details,
      headers: retryAfter === undefined ? {} : { "Retry-After": String(retryAfter) },
    });
  }
  if (failed.length > 0) throw new BridgeError(400, "vero_rejected", firstError(failed, false), { details });
  throw new BridgeError(400, "invalid_event", describeInvalid(results), { details });
}

/**
 * Sends each job's requests in arrival order, skipping the calls the ledger
 * holds (the same event sent before, through any route). After the first
 * retryable failure the rest are not attempted: Segment retries the whole
 * request anyway, and an unavailable Vero should not take thousands more
 * calls. Returns the Retry-After Vero asked for, if any.
 */
async function deliver(c: AppContext, jobs: Job[], refused: Counters): Promise<number | undefined> {
  const target = c.get("outbound");
  const ledger = await openLedger(c, jobs);
  let halted: DeliveryError | undefined;
  for (const job of jobs) {
    if (job.requests.length === 0) continue;
    if (halted) {
      job.result.error = "not sent: an earlier event hit a retryable Vero failure";
      job.result.retryable = true;
      continue;
    }
    const { error, failed } = await ledger.run(target, eventName(job.result), job.requests);
    if (!error) {
      job.result.outcome = "delivered";
      continue;
    }
    job.result.error = error.message;
    job.result.retryable = error.retryable;
    // Inline there is no dead letter: Segment retries (503) or drops (400) the event.
    if (failed) ledger.counters.add("outbound", callName(failed), error.retryable ? "retried" : "refused");
    if (error.retryable) halted = error;
  }
  ledger.counters.merge(refused);
  // Awaited, not left to waitUntil: Segment's retry of this request must find the calls recorded.
  const writes = ledger.statements().filter((statement) => statement !== undefined);
  if (ledger.db && writes.length > 0) {
    try {
      await ledger.db.batch(writes);
    } catch (error) {
      log("error", "could not record Vero calls in the ledger; a re-sent event may repeat them", {
        error: describeError(error),
      });
    }
  }
  return halted?.retryAfter;
}

/** The request's recorded calls, in one query; a ledger that cannot be read is a 503 (Segment retries). */
async function openLedger(c: AppContext, jobs: Job[]): Promise<CallLedger> {
  const messageIds = jobs.flatMap((job) =>
    job.requests.length > 0 && job.result.messageId ? [job.result.messageId] : [],
  );
  try {
    return await CallLedger.open(c.env.LEDGER, messageIds);
  } catch (error) {
    throw new BridgeError(
      503,
      "ledger_unavailable",
      `the ledger could not be read; retry later (${describeError(error)})`,
      {
        cause: error,
      },
    );
  }
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

/** Queue mode's refused counts: one statement after the answer, never one per event. */
function writeCounters(c: AppContext, counters: Counters): void {
  const statement = c.env.LEDGER && counters.statement(c.env.LEDGER);
  if (!statement) return;
  c.executionCtx.waitUntil(
    statement.run().then(
      () => undefined,
      (error: unknown) => log("warn", "could not count refused events", { error: describeError(error) }),
    ),
  );
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
