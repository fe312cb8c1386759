import type { MiddlewareHandler } from "hono";
import { unauthorized } from "../shared/errors.ts";
import type { AppEnv } from "../shared/http.ts";
import { matchesAnySecret } from "../shared/secrets.ts";

/**
 * Vero signs nothing: the `token` query parameter of the webhook URL is its
 * only credential. Checked before the body is read.
 */
export const veroTokenAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = c.req.query("token");
  if (!token) throw unauthorized("missing token: the webhook URL must end in ?token=<VERO_WEBHOOK_TOKEN>");
  if (!(await matchesAnySecret(token, c.get("inbound").webhookTokens))) throw unauthorized("wrong token");
  await next();
};
