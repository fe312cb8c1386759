import { Hono } from "hono";
import { limitBody, requireDirection } from "../shared/http.ts";
import { veroTokenAuth } from "./auth.ts";
import { handleVeroWebhook, type InboundEnv, webhookRequestLog } from "./webhook.ts";

/** Mounted at `/vero`. Settings, then the token, then the body: nothing is read before Vero is authenticated. */
export const inboundRoutes = new Hono<InboundEnv>().post(
  "/webhook",
  webhookRequestLog,
  requireDirection("inbound"),
  veroTokenAuth,
  limitBody,
  handleVeroWebhook,
);
