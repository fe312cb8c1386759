import { Hono } from "hono";
import { consoleRoutes } from "./admin/routes.tsx";
import { inboundRoutes } from "./inbound/routes.ts";
import { outboundRoutes } from "./outbound/routes.ts";
import { adminRoutes } from "./shared/admin.ts";
import { healthOf } from "./shared/health.ts";
import { type AppEnv, methodNotAllowed, notFound, refusalLog, renderError } from "./shared/http.ts";

export const app = new Hono<AppEnv>()
  .use("*", refusalLog)
  .get("/health", (c) => c.json(healthOf(c.env)))
  .all("/health", methodNotAllowed(["GET", "HEAD"]))
  .route("/vero", inboundRoutes)
  .route("/", outboundRoutes)
  .route("/admin", consoleRoutes)
  .route("/admin", adminRoutes);

app.onError(renderError);
app.notFound(notFound);
