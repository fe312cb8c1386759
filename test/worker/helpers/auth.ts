/** What the auth suites of every room share: a signed Segment event, the proof that a refusal sent nothing, the challenge of a 401. */
import { expect } from "vitest";
import { callWorker, expectJsonError, isolatedEnv, segment, vero } from "./env.ts";

/** A Segment track as raw JSON, the body whose X-Signature `TRACK_SIGNATURE` is. */
export const track = JSON.stringify({ type: "track", messageId: "m-1", userId: "u-1", event: "Signed Up" });

/**
 * A known answer computed outside the code, so that a wrong algorithm fails here:
 * printf '%s' '{"type":"track","messageId":"m-1","userId":"u-1","event":"Signed Up"}' |
 *   openssl dgst -sha1 -hmac dev-segment-shared-secret-for-local-use
 */
export const TRACK_SIGNATURE = "c2746e20772f13549199ba5f0838910b85accf5c";

/** Proves the request went nowhere: neither stand-in heard from this test's tenants. */
export async function expectNothingSent(writeKey: string, veroToken: string) {
  expect(await segment.calls(writeKey)).toEqual([]);
  expect(await vero.calls(veroToken)).toEqual([]);
}

/** The WWW-Authenticate header of `request`'s answer, which must be a 401 JSON error; every secret is set, ADMIN_TOKEN included. */
export async function challenge(request: Request): Promise<string | null> {
  const { env } = await isolatedEnv();
  const response = await callWorker(request, { ...env, ADMIN_TOKEN: "admin-token-0123456789abcdef0123456" });
  await expectJsonError(response, 401);
  return response.headers.get("WWW-Authenticate");
}
