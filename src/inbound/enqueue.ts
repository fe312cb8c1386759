/** Queue mode of the webhook route: the mapped message goes to the Segment queue, and Vero hears 202 at once. */
import type { Context } from "hono";
import { enqueueFailed } from "../shared/enqueue.ts";
import { BridgeError } from "../shared/errors.ts";
import { jsonBytes } from "../shared/json.ts";
import { MAX_SEGMENT_MESSAGE_BYTES, segmentJob } from "./job.ts";
import type { SegmentMessage } from "./map.ts";
import type { InboundEnv } from "./webhook.ts";

export async function enqueueWebhook(
  c: Context<InboundEnv>,
  queue: Queue<unknown>,
  message: SegmentMessage,
): Promise<Response> {
  const fields = c.get("webhookLog");
  const bytes = jsonBytes(message);
  if (bytes > MAX_SEGMENT_MESSAGE_BYTES) {
    // Accepting it would only move the refusal to the dead-letter store; Vero should hear it now.
    fields.outcome = "segment_rejected";
    throw new BridgeError(
      400,
      "segment_rejected",
      `the event is ${bytes} bytes once mapped, over Segment's 32 KB per event, so Segment would refuse it`,
      { details: { upstream: "segment", bytes, limit: MAX_SEGMENT_MESSAGE_BYTES } },
    );
  }
  try {
    await queue.send(segmentJob(message), { contentType: "json" });
  } catch (error) {
    fields.outcome = "queue_unavailable";
    throw enqueueFailed(error);
  }
  fields.outcome = "queued";
  return c.json(
    message.type === "track"
      ? { ok: true, queued: true, messageId: message.messageId, call: "track", event: message.event }
      : { ok: true, queued: true, messageId: message.messageId, call: "identify" },
    202,
  );
}
