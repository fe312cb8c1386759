import { Hono } from "hono";
import { methodNotAllowed } from "hono/method-not-allowed";
import { adminRoutes } from "./admin/api.ts";
import { consoleRoutes } from "./admin/routes.tsx";
import { inboundRoutes } from "./inbound/routes.ts";
import { outboundRoutes } from "./outbound/routes.ts";
import { BridgeError } from "./shared/errors.ts";
import { cachedReadinessOf, healthOf } from "./shared/health.ts";
import { type AppEnv, notFound, refusalLog, rejectMethod, renderError } from "./shared/http.ts";
import { VERSION } from "./shared/version.ts";

export const app = new Hono<AppEnv>();

app
  .use("*", refusalLog)
  // A known path called with another method: 405 with `Allow`, from the routes registered below.
  .use("*", methodNotAllowed({ app, onMethodNotAllowed: rejectMethod }))
  .get("/health", (c) => c.json(healthOf(c.env)))
  // Readiness for uptime monitors: 200 when the bridge can do its job, 503 with the reasons when it cannot;
  // checked at most every 30 seconds per isolate.
  .get("/health/ready", async (c) => {
    c.header("Cache-Control", "no-store");
    const readiness = await cachedReadinessOf(c.env);
    if (!readiness.ready) {
      throw new BridgeError(503, "not_ready", readiness.reasons.join("; "), {
        details: { reasons: readiness.reasons },
      });
    }
    return c.json({ status: "ready" as const, version: VERSION });
  })
  .route("/vero", inboundRoutes)
  .route("/", outboundRoutes)
  .route("/admin", consoleRoutes)
  .route("/admin", adminRoutes);

app.onError(renderError);
app.notFound(notFound);
