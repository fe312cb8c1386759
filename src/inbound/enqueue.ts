/** Queue mode of the webhook route: the mapped message goes to the Segment queue, and Vero hears 202 at once. */
import { enqueueFailed } from "../delivery/enqueue.ts";
import { segmentJob } from "./job.ts";
import type { SegmentMessage } from "./map.ts";

/** Puts the message on the queue, or throws the 503 that tells Vero to resend. */
export async function enqueueWebhook(queue: Queue<unknown>, message: SegmentMessage): Promise<void> {
  try {
    await queue.send(segmentJob(message), { contentType: "json" });
  } catch (error) {
    throw enqueueFailed(error);
  }
}
