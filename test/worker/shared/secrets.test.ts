/** hmacSha1Hex, the X-Signature of Segment's Webhooks destination, against answers computed outside the code. */
import { expect, it } from "vitest";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";
import { TRACK_SIGNATURE, track } from "../helpers/auth.ts";

const secret = "dev-segment-shared-secret-for-local-use";

it("hmacSha1Hex gives the known answers: RFC 2202's and the one computed with openssl", async () => {
  expect(await hmacSha1Hex("Jefe", "what do ya want for nothing?")).toBe("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
  expect(await hmacSha1Hex(secret, track)).toBe(TRACK_SIGNATURE);
});
