/**
 * The two ways Segment reaches the bridge and what each promises its caller:
 * Segment's HTTP Tracking API (`/v1/*`, called by Segment's server libraries)
 * and the Webhooks destination (`/segment`, called by Segment itself). One
 * place for their limits and for how each answers an accepted request.
 */

import { BridgeError } from "../shared/errors.ts";
import type { BodyLimit } from "../shared/http.ts";
import { jsonBytes } from "../shared/json.ts";

export type Contract = "tracking-api" | "webhook";

/**
 * Segment's HTTP Tracking API: 500 KB per batch request, 32 KB per event or
 * single call, 2,500 events per batch. Read as KiB, the larger reading, so
 * that no library's batch (analytics-python stops at 475,000 bytes,
 * analytics-go at 500,000) is refused.
 */
export const TRACKING_API_LIMITS = { batchBytes: 500 * 1024, eventBytes: 32 * 1024, batchEvents: 2500 } as const;

/** 2.5 KiB per event at 4,000 events: a typical Actions batch, and well within a Worker's 128 MB. */
export const WEBHOOK_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Over its size limit Segment's API answers 400 (its libraries then drop the batch rather than retry it). */
export function trackingApiBodyLimit(maxBytes: number): BodyLimit {
  return {
    maxBytes,
    tooLarge: () =>
      new BridgeError(
        400,
        "payload_too_large",
        `request body is over ${maxBytes} bytes (${maxBytes / 1024} KB), Segment's limit for this path`,
      ),
  };
}

export const webhookBodyLimit: BodyLimit = {
  maxBytes: WEBHOOK_MAX_BODY_BYTES,
  tooLarge: () =>
    new BridgeError(
      413,
      "payload_too_large",
      `request body is over ${WEBHOOK_MAX_BODY_BYTES} bytes (10 MiB); lower the Batch Size of the Webhooks (Actions) mapping`,
    ),
};

/** Segment's API refuses the events past its 2,500th one by one, answering 200 for the request. */
export const pastBatchLimit = (index: number): string | undefined =>
  index >= TRACKING_API_LIMITS.batchEvents
    ? `past the ${TRACKING_API_LIMITS.batchEvents} events Segment's API takes in one batch`
    : undefined;

/**
 * Segment's API refuses an event over 32 KB on its own, answering 200 for
 * its batch. Call it only on an event whose depth is checked: measuring
 * re-serialises it.
 */
export function oversizedEvent(input: unknown): string | undefined {
  const bytes = jsonBytes(input);
  return bytes > TRACKING_API_LIMITS.eventBytes
    ? `event is ${bytes} bytes, over Segment's ${TRACKING_API_LIMITS.eventBytes} bytes (32 KB) per event`
    : undefined;
}
