import { Hono } from "hono";
import { type AppEnv, limitBody, limitDecodedBody, methodNotAllowed, requireDirection } from "../shared/http.ts";
import { segmentBasicAuth, segmentWebhookAuth } from "./auth.ts";
import { handleSegmentRequest } from "./handle.ts";
import type { SegmentEventType } from "./schema.ts";

// Grouped: Hono's trie router (picked once the admin routes join) tests a param's pattern as
// `^batch|...|screen$`, so an ungrouped list served /v1/xtrack and /v1/batchy as real calls.
const V1_CALLS = "(?:batch|track|identify|group|alias|page|screen)";

export const outboundRoutes = new Hono<AppEnv>()
  // The signature covers the body, so here the size limit comes before authentication.
  .post("/segment", requireDirection("outbound"), limitBody, segmentWebhookAuth, (c) => handleSegmentRequest(c))
  .all("/segment", methodNotAllowed(["POST"]))
  .post(`/v1/:call{${V1_CALLS}}`, requireDirection("outbound"), segmentBasicAuth, limitDecodedBody, (c) => {
    const call = c.req.param("call");
    // `/v1/track` and its kin imply the type of an event that does not state it.
    return handleSegmentRequest(c, call === "batch" ? undefined : (call as SegmentEventType));
  })
  .all(`/v1/:call{${V1_CALLS}}`, methodNotAllowed(["POST"]));
