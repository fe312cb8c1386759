import { createHmac } from "node:crypto";

const encoder = new TextEncoder();

/**
 * Compares a presented credential with the configured ones in constant time.
 * Both sides are hashed first so that `timingSafeEqual` always sees equal
 * lengths and the comparison leaks neither content nor length.
 */
export async function matchesAnySecret(presented: string, secrets: readonly string[]): Promise<boolean> {
  const presentedDigest = await crypto.subtle.digest("SHA-256", encoder.encode(presented));
  let matched = false;
  for (const secret of secrets) {
    const secretDigest = await crypto.subtle.digest("SHA-256", encoder.encode(secret));
    // No early exit: every configured value is compared, whichever matches.
    if (crypto.subtle.timingSafeEqual(presentedDigest, secretDigest)) matched = true;
  }
  return matched;
}

/** Hex HMAC-SHA1, the signature Segment's Webhooks destination sends in `X-Signature`. */
export function hmacSha1Hex(secret: string, data: string): string {
  return createHmac("sha1", secret).update(data).digest("hex");
}
