import { Hono } from "hono";
import { consoleRoutes } from "./admin/routes.tsx";
import { inboundRoutes } from "./inbound/routes.ts";
import { outboundRoutes } from "./outbound/routes.ts";
import { adminRoutes } from "./shared/admin.ts";
import { BridgeError } from "./shared/errors.ts";
import { healthOf, readinessOf } from "./shared/health.ts";
import { type AppEnv, methodNotAllowed, notFound, refusalLog, renderError } from "./shared/http.ts";

export const app = new Hono<AppEnv>()
  .use("*", refusalLog)
  .get("/health", (c) => c.json(healthOf(c.env)))
  .all("/health", methodNotAllowed(["GET", "HEAD"]))
  // Readiness for uptime monitors: 200 when the bridge can do its job, 503 with the reasons when it cannot.
  .get("/health/ready", async (c) => {
    c.header("Cache-Control", "no-store");
    const readiness = await readinessOf(c.env);
    if (!readiness.ready) {
      throw new BridgeError(503, "not_ready", readiness.reasons.join("; "), {
        details: { reasons: readiness.reasons },
        headers: { "Cache-Control": "no-store" },
      });
    }
    return c.json({ status: "ready" as const, version: healthOf(c.env).version });
  })
  .all("/health/ready", methodNotAllowed(["GET", "HEAD"]))
  .route("/vero", inboundRoutes)
  .route("/", outboundRoutes)
  .route("/admin", consoleRoutes)
  .route("/admin", adminRoutes);

app.onError(renderError);
app.notFound(notFound);
