import { Hono } from "hono";
import { type AppEnv, limitBody, methodNotAllowed, notImplemented, requireDirection } from "../shared/http.ts";
import { segmentBasicAuth, segmentWebhookAuth } from "./auth.ts";

const V1_CALLS = "batch|track|identify|group|alias|page|screen";

export const outboundRoutes = new Hono<AppEnv>()
  // The signature covers the body, so here the size limit comes before authentication.
  .post("/segment", requireDirection("outbound"), limitBody, segmentWebhookAuth, notImplemented)
  .all("/segment", methodNotAllowed(["POST"]))
  .post(`/v1/:call{${V1_CALLS}}`, requireDirection("outbound"), segmentBasicAuth, limitBody, notImplemented)
  .all(`/v1/:call{${V1_CALLS}}`, methodNotAllowed(["POST"]));
