/**
 * The inline outbound route: body to events, each event validated, mapped
 * and delivered on its own, and one answer that tells Segment whether to
 * retry (503), drop (400) or move on (200).
 */
import { enqueueFailed, queueFor } from "../shared/enqueue.ts";
import { BridgeError, badRequest, DeliveryError } from "../shared/errors.ts";
import type { AppContext } from "../shared/http.ts";
import { log } from "../shared/log.ts";
import { enqueueJobs } from "./enqueue.ts";
import { orderingKey } from "./job.ts";
import { mapSegmentEvent } from "./map.ts";
import type { EventOutcome, EventResult, Job } from "./result.ts";
import { messageIdOf, parseSegmentBody, parseSegmentEvent, type SegmentEventType } from "./schema.ts";
import { sendToVero } from "./vero.ts";

// Enough to find a request's events in the logs without writing out a whole batch.
const LOGGED_MESSAGE_IDS = 50;

export async function handleSegmentRequest(c: AppContext, impliedType?: SegmentEventType): Promise<Response> {
  const started = Date.now();
  const route = c.req.path;
  // Before the body is read: queue mode without its dead-letter store is a 503 naming the binding.
  const queue = queueFor(c.env, "VERO_QUEUE");
  const body = parseSegmentBody(await c.req.text());
  if (!body.ok) {
    log("info", "outbound request refused", { route, status: 400, error: body.error });
    throw badRequest(body.error);
  }

  const receivedAt = new Date();
  const jobs: Job[] = body.events.map((input, index) => {
    const result: EventResult = { messageId: messageIdOf(input), index, outcome: "invalid" };
    const fallbackUser = `#${index}`;
    const parsed = parseSegmentEvent(input, impliedType);
    if (!parsed.ok) return { result: { ...result, error: parsed.error }, requests: [], user: fallbackUser };
    const mapped = mapSegmentEvent(parsed.event, { receivedAt });
    const user = orderingKey(parsed.event, fallbackUser);
    if (mapped.outcome === "invalid") return { result: { ...result, error: mapped.error }, requests: [], user };
    if (mapped.outcome === "skip")
      return { result: { ...result, outcome: "skipped", reason: mapped.reason }, requests: [], user };
    return { result: { ...result, outcome: "failed" }, requests: mapped.requests, user };
  });

  let retryAfter: number | undefined;
  if (queue) await enqueueJobs(queue, jobs);
  else retryAfter = await deliver(c, jobs);
  const results = jobs.map((job) => job.result);
  const count = (outcome: EventOutcome) => results.filter((result) => result.outcome === outcome).length;
  const failed = results.filter((result) => result.outcome === "failed");
  const status = failed.some((result) => result.retryable)
    ? 503
    : failed.length > 0 || count("invalid") === results.length
      ? 400
      : count("queued") > 0
        ? 202
        : 200;

  const messageIds = results.map((result) => result.messageId ?? `#${result.index}`);
  const ok = status === 200 || status === 202;
  log(ok ? "info" : "warn", "outbound request", {
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
  });

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
 * Sends each job's requests in arrival order. After the first retryable
 * failure the rest are not attempted: Segment retries the whole request
 * anyway, and an unavailable Vero should not take thousands more calls.
 * Returns the Retry-After Vero asked for, if any.
 */
async function deliver(c: AppContext, jobs: Job[]): Promise<number | undefined> {
  const target = c.get("outbound");
  let halted: DeliveryError | undefined;
  for (const job of jobs) {
    if (job.requests.length === 0) continue;
    if (halted) {
      job.result.error = "not sent: an earlier event hit a retryable Vero failure";
      job.result.retryable = true;
      continue;
    }
    try {
      await sendToVero(target, job.requests);
      job.result.outcome = "delivered";
    } catch (error) {
      if (!(error instanceof DeliveryError)) throw error;
      job.result.error = error.message;
      job.result.retryable = error.retryable;
      if (error.retryable) halted = error;
    }
  }
  return halted?.retryAfter;
}

function firstError(failed: EventResult[], retryable: boolean): string {
  const first = failed.find((result) => result.retryable === retryable);
  const message = first?.error ?? "Vero did not take the event";
  return failed.length === 1 ? message : `${failed.length} events failed; first: ${message}`;
}

function describeInvalid(results: EventResult[]): string {
  const first = results[0];
  if (results.length === 1 && first?.error) return first.error;
  const named = results.map((result) => `${result.messageId ?? `#${result.index}`}: ${result.error}`);
  return `none of the ${results.length} events is deliverable: ${named.slice(0, 3).join("; ")}${results.length > 3 ? "; ..." : ""}`;
}
