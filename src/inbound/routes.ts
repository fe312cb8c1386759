import { Hono } from "hono";
import { type AppEnv, limitBody, methodNotAllowed, notImplemented, requireDirection } from "../shared/http.ts";
import { veroTokenAuth } from "./auth.ts";

/** Mounted at `/vero`. Settings, then the token, then the body: nothing is read before Vero is authenticated. */
export const inboundRoutes = new Hono<AppEnv>()
  .post("/webhook", requireDirection("inbound"), veroTokenAuth, limitBody, notImplemented)
  .all("/webhook", methodNotAllowed(["POST"]));
