import { Hono } from "hono";
import { type AppEnv, bodyReader, requireDirection } from "../shared/http.ts";
import { segmentApiKeyInBody, segmentApiKeyInHeader, segmentWebhookAuth } from "./auth.ts";
import { TRACKING_API_LIMITS, trackingApiBodyLimit, webhookBodyLimit } from "./contract.ts";
import { handleSegmentRequest } from "./handle.ts";
import type { SegmentEventType } from "./schema.ts";

// Grouped: Hono's trie router (picked once the admin routes join) tests a param's pattern as
// `^batch|...|screen$`, so an ungrouped list served /v1/xtrack and /v1/batchy as real calls.
const V1_CALLS = "(?:batch|import|track|identify|group|alias|page|screen)";
// analytics-java posts to `/v1/import/`, with the slash.
const V1_PATH = `/v1/:call{${V1_CALLS}}`;
const V1_PATHS = [V1_PATH, `${V1_PATH}/`];

const batchLimit = bodyReader({ decode: true, limit: trackingApiBodyLimit(TRACKING_API_LIMITS.batchBytes) });
const singleCallLimit = bodyReader({ decode: true, limit: trackingApiBodyLimit(TRACKING_API_LIMITS.eventBytes) });
const webhookLimit = bodyReader({ decode: false, limit: webhookBodyLimit });
const isBatch = (call: string) => call === "batch" || call === "import";

export const outboundRoutes = new Hono<AppEnv>()
  // The signature covers the body, so here the size limit comes before authentication.
  .post("/segment", requireDirection("outbound"), webhookLimit, segmentWebhookAuth, (c) =>
    handleSegmentRequest(c, "webhook"),
  )
  .on(
    "POST",
    V1_PATHS,
    requireDirection("outbound"),
    segmentApiKeyInHeader,
    (c, next) => (isBatch(c.req.param("call") ?? "") ? batchLimit(c, next) : singleCallLimit(c, next)),
    segmentApiKeyInBody,
    (c) => {
      const call = c.req.param("call") ?? "";
      // `/v1/track` and its kin imply the type of an event that does not state it.
      return handleSegmentRequest(c, "tracking-api", isBatch(call) ? undefined : (call as SegmentEventType));
    },
  );
