import type { Context, MiddlewareHandler } from "hono";
import { basicAuth } from "hono/basic-auth";
import { bearerAuth } from "hono/bearer-auth";
import { type AuthScheme, unauthorized } from "../shared/errors.ts";
import type { AppEnv } from "../shared/http.ts";
import { exceedsDepth, isRecord } from "../shared/json.ts";
import { hmacSha1Hex, matchesAnySecret } from "../shared/secrets.ts";

const secretsOf = (c: Context<AppEnv>) => c.get("outbound").sharedSecrets;

/** Hono calls these to word a refusal; throwing sends it down the one error path (`renderError`). */
const refuse = (message: string, schemes: readonly AuthScheme[]) => (): never => {
  throw unauthorized(message, schemes);
};

/** `/segment` takes either scheme in `Authorization` (or a signature, which no scheme describes). */
const SEGMENT_SCHEMES: readonly AuthScheme[] = ["Basic", "Bearer"];
/** `/v1/*` takes Basic, as Segment's API does (or a `writeKey` in the body). */
const API_SCHEMES: readonly AuthScheme[] = ["Basic"];

/** `Authorization: Basic base64(secret + ":")`, as Segment's libraries send their write key. */
const basicSecret = basicAuth({
  verifyUser: (username, _password, c) => matchesAnySecret(username, secretsOf(c as Context<AppEnv>)),
  invalidUserMessage: refuse("wrong Basic credentials (the user name must be SEGMENT_SHARED_SECRET)", ["Basic"]),
});

/** `Authorization: Bearer <secret>`, a header the user adds to a Webhooks (Actions) mapping. */
const bearerSecret = bearerAuth<AppEnv>({
  verifyToken: (token, c) => matchesAnySecret(token, secretsOf(c)),
  invalidAuthenticationHeader: { message: refuse("malformed Bearer credentials", ["Bearer"]) },
  invalidToken: { message: refuse("wrong Bearer token (it must be SEGMENT_SHARED_SECRET)", ["Bearer"]) },
});

/** Basic or Bearer, whichever scheme the header names. */
const authorizationSecret: MiddlewareHandler<AppEnv> = (c, next) =>
  /^\s*bearer\s/i.test(c.req.header("Authorization") ?? "") ? bearerSecret(c, next) : basicSecret(c, next);

const signedWith = async (signature: string, data: string, secrets: readonly string[]) =>
  matchesAnySecret(
    signature.trim().toLowerCase(),
    secrets.map((secret) => hmacSha1Hex(secret, data)),
  );

/**
 * Segment signs an Actions batch over `JSON.stringify(body[0])`, which
 * vouches for nothing after the first event. The first event is measured
 * before it is re-serialised: the body limit bounds its size, and a nesting
 * deeper than any event has is refused here rather than left to the stack.
 */
async function firstEventSigned(signature: string, raw: string, secrets: readonly string[]): Promise<boolean> {
  let first: unknown;
  try {
    first = (JSON.parse(raw) as unknown[])[0];
  } catch {
    return false;
  }
  if (!isRecord(first) || exceedsDepth(first)) return false;
  return signedWith(signature, JSON.stringify(first), secrets);
}

/**
 * `POST /segment`: `Authorization` (Basic or Bearer with the shared secret)
 * authenticates any body. Without it, `X-Signature` over the raw body; for a
 * JSON array, a signature over its first event only when
 * SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE says so.
 */
export const segmentWebhookAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.header("Authorization")) return authorizationSecret(c, next);
  const signature = c.req.header("X-Signature");
  if (!signature) throw unauthorized("missing Authorization (Basic or Bearer) or X-Signature header", SEGMENT_SCHEMES);
  const raw = await c.req.text();
  const secrets = secretsOf(c);
  if (await signedWith(signature, raw, secrets)) return next();
  if (!raw.trimStart().startsWith("["))
    throw unauthorized("X-Signature does not match the body signed with SEGMENT_SHARED_SECRET", SEGMENT_SCHEMES);
  if (!c.get("outbound").acceptFirstEventSignature)
    throw unauthorized(
      "a JSON array needs Authorization (Basic or Bearer with SEGMENT_SHARED_SECRET): an X-Signature over its first event covers nothing after it, and SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE is off",
      SEGMENT_SCHEMES,
    );
  if (await firstEventSigned(signature, raw, secrets)) return next();
  throw unauthorized(
    "X-Signature matches neither the body nor its first event signed with SEGMENT_SHARED_SECRET",
    SEGMENT_SCHEMES,
  );
};

/**
 * `POST /v1/*`, first step: a write key in `Authorization: Basic` is checked
 * before the body is read. Without the header the key must be in the body
 * (`segmentApiKeyInBody`, after the size limit).
 */
export const segmentApiKeyInHeader: MiddlewareHandler<AppEnv> = async (c, next) =>
  c.req.header("Authorization") ? basicSecret(c, next) : next();

/** `POST /v1/*`, second step: `writeKey` in the JSON body, as analytics-python sends it. */
export const segmentApiKeyInBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.header("Authorization")) return next();
  let writeKey: unknown;
  try {
    const body: unknown = JSON.parse(await c.req.text());
    c.set("parsedBody", body);
    writeKey = isRecord(body) ? body.writeKey : undefined;
  } catch {
    writeKey = undefined;
  }
  if (typeof writeKey !== "string")
    throw unauthorized(
      "missing Authorization: Basic header or writeKey in the body (the library's write key is SEGMENT_SHARED_SECRET)",
      API_SCHEMES,
    );
  if (!(await matchesAnySecret(writeKey, secretsOf(c))))
    throw unauthorized("wrong writeKey (it must be SEGMENT_SHARED_SECRET)", API_SCHEMES);
  await next();
};
