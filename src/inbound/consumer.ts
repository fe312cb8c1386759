/**
 * The Segment queue's consumer: a whole batch of Segment-bound messages goes
 * to Segment in one go (analytics-node posts it as one /v1/batch request,
 * split only past 480 KB), and each queue message is then settled from its
 * own outcome. Retries are the queue's, with backoff: analytics-node makes
 * one attempt per invocation.
 */

import { Counters } from "../delivery/ledger.ts";
import { type Outcome, retryPolicyFor, Settlement } from "../delivery/settlement.ts";
import type { Env } from "../shared/env.ts";
import { DeliveryError } from "../shared/errors.ts";
import { chunkWithin, jsonBytes } from "../shared/json.ts";
import { log } from "../shared/log.ts";
import { describeUnready, type SegmentTarget, settingsFor } from "../shared/settings.ts";
import { describeIssues } from "../shared/zod.ts";
import { MAX_SEGMENT_MESSAGE_BYTES, segmentJobSchema } from "./job.ts";
import type { SegmentMessage } from "./map.ts";
import { type SendOptions, type SendOutcome, segmentFailureKind, sendToSegment } from "./segment.ts";

/**
 * A consumer invocation may run for minutes and nobody waits on it, so the
 * timeouts are generous; a failed request is not retried here but by the
 * queue, whose backoff outlasts a rate limit or an outage far better.
 */
export const CONSUMER_SEND_OPTIONS: Required<SendOptions> = {
  maxRetries: 0,
  httpRequestTimeoutMs: 15_000,
  deadlineMs: 60_000,
  maxRateLimitSeconds: 0,
};

function outcomeOf(sent: SendOutcome | undefined): Outcome {
  // sendToSegment reports every message; should one be missing, it is not known to be delivered.
  if (!sent) return { ok: false, retryable: true, reason: "no outcome reported for this message" };
  if (sent.ok) return { ok: true };
  const { error } = sent;
  switch (segmentFailureKind(error)) {
    case "retry":
      return { ok: false, retryable: true, reason: error.message, retryAfter: error.retryAfter };
    case "check_settings":
      return { ok: false, retryable: true, reason: `${error.message}; check SEGMENT_WRITE_KEY and SEGMENT_API_HOST` };
    case "refused":
      return { ok: false, retryable: false, reason: error.message };
  }
}

/**
 * Bytes per /v1/batch request, under Segment's 500 KB with room for the
 * batch envelope and what analytics-node adds to each message. Counted here
 * because analytics-node's own size check does not count bytes (it counts
 * fragments of the URI-encoded JSON), so it would let a large batch through.
 */
const MAX_REQUEST_BYTES = 450 * 1024;
const PER_MESSAGE_OVERHEAD_BYTES = 512;

/** Splits messages into requests Segment accepts; a message alone over 32 KB is not sent at all. */
function chunk(messages: SegmentMessage[]): {
  chunks: SegmentMessage[][];
  oversized: { message: SegmentMessage; size: number }[];
} {
  const sized = messages.map((message) => ({ message, size: jsonBytes(message) }));
  const oversized = sized.filter(({ size }) => size > MAX_SEGMENT_MESSAGE_BYTES);
  const fits = sized.filter(({ size }) => size <= MAX_SEGMENT_MESSAGE_BYTES);
  const chunks = chunkWithin(fits, ({ size }) => size + PER_MESSAGE_OVERHEAD_BYTES, {
    maxItems: Number.POSITIVE_INFINITY,
    maxBytes: MAX_REQUEST_BYTES,
  }).map((run) => run.map(({ message }) => message));
  return { chunks, oversized };
}

function refusedForGood(sent: SendOutcome): boolean {
  const outcome = outcomeOf(sent);
  return !outcome.ok && !outcome.retryable;
}

/** Every message's outcome, by messageId. */
async function deliver(settings: SegmentTarget, messages: SegmentMessage[]): Promise<Map<string, SendOutcome>> {
  const byId = new Map<string, SendOutcome>();
  const { chunks, oversized } = chunk(messages);
  for (const { message, size } of oversized) {
    byId.set(message.messageId, {
      messageId: message.messageId,
      ok: false,
      error: new DeliveryError("segment", `the event is over Segment's 32 KB (${size} bytes)`, {
        retryable: false,
      }),
    });
  }
  const results = await Promise.all(chunks.map((part) => sendToSegment(settings, part, CONSUMER_SEND_OPTIONS)));
  for (const [index, outcomes] of results.entries()) {
    const part = chunks[index] ?? [];
    // Segment refuses a whole batch for one bad event; each is then sent alone, so its neighbours are not
    // dead-lettered with it. Rare (the route refuses what Segment would), so the extra requests are affordable.
    if (part.length > 1 && outcomes.some(refusedForGood)) {
      for (const message of part) {
        const [alone] = await sendToSegment(settings, [message], CONSUMER_SEND_OPTIONS);
        if (alone) byId.set(message.messageId, alone);
      }
      continue;
    }
    for (const outcome of outcomes) byId.set(outcome.messageId, outcome);
  }
  return byId;
}

export async function consumeSegmentBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const settlement = new Settlement("segment", retryPolicyFor(env));
  const counters = new Counters();
  // Counters and dead letters are written once per batch, whatever way it ends.
  const flush = () => settlement.flush(env.LEDGER, env.LEDGER ? counters.statements(env.LEDGER) : []);
  const valid: { queued: Message<unknown>; message: SegmentMessage }[] = [];
  for (const queued of batch.messages) {
    const parsed = segmentJobSchema.safeParse(queued.body);
    if (parsed.success) valid.push({ queued, message: parsed.data.message });
    else {
      // No retry can make a malformed body deliverable; the dead letter keeps it for a look.
      settlement.settle(queued, {
        ok: false,
        retryable: false,
        reason: `malformed Segment queue message: ${describeIssues(parsed.error, { whole: "body", most: 3 })}`,
      });
      counters.add("inbound", "(malformed)", "dead_lettered");
    }
  }
  if (valid.length === 0) {
    await flush();
    return;
  }

  const inbound = settingsFor(env).consumers.segment;
  if (!inbound.ready) {
    const reason = describeUnready("the Segment consumer", inbound);
    log("error", "segment consumer cannot deliver", { queue: batch.queue, messages: valid.length, reason });
    for (const { queued } of valid) settlement.settle(queued, { ok: false, retryable: true, reason });
    await flush();
    return;
  }

  // The same webhook enqueued twice (Vero resending) is one message to Segment, sent once.
  const unique = new Map<string, SegmentMessage>();
  for (const { message } of valid) if (!unique.has(message.messageId)) unique.set(message.messageId, message);
  const byId = await deliver(inbound.settings, [...unique.values()]);

  let failed = 0;
  for (const { queued, message } of valid) {
    const outcome = outcomeOf(byId.get(message.messageId));
    if (!outcome.ok) failed++;
    const fate = settlement.settle(queued, outcome);
    counters.add(
      "inbound",
      message.type === "track" ? message.event : message.type,
      fate === "acked" ? "delivered" : fate,
    );
    // From the route's enqueue (the bridge's receipt) to Segment's acceptance.
    if (fate === "acked") counters.addLatency("inbound", Date.now() - queued.timestamp.getTime());
  }
  await flush();
  log(failed === 0 ? "info" : "warn", "segment batch", {
    queue: batch.queue,
    messages: batch.messages.length,
    sent: unique.size,
    delivered: valid.length - failed,
    failed,
    malformed: batch.messages.length - valid.length,
  });
}
