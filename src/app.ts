import { Hono } from "hono";
import { inboundRoutes } from "./inbound/routes.ts";
import { outboundRoutes } from "./outbound/routes.ts";
import { adminRoutes } from "./shared/admin.ts";
import { type AppEnv, methodNotAllowed, notFound, refusalLog, renderError } from "./shared/http.ts";
import { settingsFor } from "./shared/settings.ts";
import { VERSION } from "./shared/version.ts";

export const app = new Hono<AppEnv>()
  .use("*", refusalLog)
  .get("/health", (c) => {
    const settings = settingsFor(c.env);
    return c.json({
      status: "ok",
      version: VERSION,
      inbound: settings.inbound.ready,
      outbound: settings.outbound.ready,
      consumers: { segment: settings.consumers.segment.ready, vero: settings.consumers.vero.ready },
    });
  })
  .all("/health", methodNotAllowed(["GET", "HEAD"]))
  .route("/vero", inboundRoutes)
  .route("/", outboundRoutes)
  .route("/admin", adminRoutes);

app.onError(renderError);
app.notFound(notFound);
