import type { MiddlewareHandler } from "hono";
import { unauthorized } from "../shared/errors.ts";
import type { AppEnv } from "../shared/http.ts";
import { hmacSha1Hex, matchesAnySecret } from "../shared/secrets.ts";

/** The secret from `Authorization: Basic base64(secret + ":")`, as Segment's SDKs send their write key. */
function basicUsername(header: string | undefined): string | undefined {
  const match = header?.match(/^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i);
  if (!match?.[1]) return undefined;
  let decoded: string;
  try {
    decoded = atob(match[1]);
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  return colon === -1 ? decoded : decoded.slice(0, colon);
}

async function basicMatches(header: string | undefined, secrets: readonly string[]): Promise<boolean> {
  const username = basicUsername(header);
  return username !== undefined && username.length > 0 && (await matchesAnySecret(username, secrets));
}

/**
 * What Segment signs: the raw body, except that Actions batches (a JSON
 * array) are signed over `JSON.stringify(body[0])`. The array is only parsed
 * when the raw signature has already failed.
 */
async function signatureMatches(signature: string, rawBody: string, secrets: readonly string[]): Promise<boolean> {
  const presented = signature.trim().toLowerCase();
  const overRaw = secrets.map((secret) => hmacSha1Hex(secret, rawBody));
  if (await matchesAnySecret(presented, overRaw)) return true;
  if (!rawBody.trimStart().startsWith("[")) return false;
  let first: unknown;
  try {
    first = (JSON.parse(rawBody) as unknown[])[0];
  } catch {
    return false;
  }
  if (first === undefined) return false;
  const overFirst = secrets.map((secret) => hmacSha1Hex(secret, JSON.stringify(first)));
  return matchesAnySecret(presented, overFirst);
}

/** `POST /segment`: Segment's Webhooks destination signs with `X-Signature`, or uses Basic. */
export const segmentWebhookAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const secrets = c.get("outbound").sharedSecrets;
  const signature = c.req.header("X-Signature");
  const authorization = c.req.header("Authorization");
  if (signature) {
    if (!(await signatureMatches(signature, await c.req.text(), secrets))) {
      throw unauthorized("X-Signature does not match the body signed with SEGMENT_SHARED_SECRET");
    }
  } else if (authorization) {
    if (!(await basicMatches(authorization, secrets))) throw unauthorized("wrong Basic credentials");
  } else {
    throw unauthorized("missing X-Signature or Authorization: Basic header");
  }
  await next();
};

/** `POST /v1/*`: Segment's SDKs send the write key (here the shared secret) as Basic. */
export const segmentBasicAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const authorization = c.req.header("Authorization");
  if (!authorization)
    throw unauthorized("missing Authorization: Basic header (the SDK's writeKey is SEGMENT_SHARED_SECRET)");
  if (!(await basicMatches(authorization, c.get("outbound").sharedSecrets)))
    throw unauthorized("wrong Basic credentials");
  await next();
};
