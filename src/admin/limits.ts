/**
 * The limit on failed admin credentials (console sign-in, the Bearer API),
 * by Cloudflare's Rate Limiting binding SIGN_IN_LIMITER. Only failures are
 * counted, so an operator with the right token is never held back by others
 * guessing from the same address (a shared office, a carrier's NAT); guessing
 * itself is hopeless against a token of 32 characters or more, and the limit
 * keeps a flood of wrong ones down to a trickle of 429s.
 */
import type { Env } from "../shared/env.ts";
import { log } from "../shared/log.ts";

/** 8 groups of 16 bits from an IPv6 address, or undefined when it is not one. */
function ipv6Groups(address: string): number[] | undefined {
  let text = address;
  const v4 = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string | undefined) => (part ? part.split(":").map((group) => Number.parseInt(group, 16)) : []);
  const head = parse(halves[0]);
  const tail = parse(halves[1]);
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<number>(Math.max(0, missing)).fill(0), ...tail];
  return groups.every((group) => Number.isInteger(group) && group >= 0 && group <= 0xffff) ? groups : undefined;
}

/**
 * What one client is counted as: an IPv4 address as it is, an IPv6 address
 * by its /64 (one subscriber's network: every address in it is theirs to
 * use), an IPv4-mapped IPv6 address as the IPv4 one.
 */
export function clientKey(address: string | undefined): string {
  const ip = address?.trim().toLowerCase() ?? "";
  if (ip === "") return "unknown";
  if (!ip.includes(":")) return ip;
  const groups = ipv6Groups(ip.replace(/%.*$/, ""));
  if (!groups) return ip;
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const [high = 0, low = 0] = groups.slice(6);
    return [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(":")}::/64`;
}

/**
 * Counts one failed attempt of the caller (CF-Connecting-IP, which Cloudflare
 * sets) against `scope`; false once the caller is past the limit. Without the
 * binding, no limit: docs/security.md says what that leaves.
 */
export async function countFailure(
  c: { env: Env; req: { header(name: string): string | undefined } },
  scope: "sign-in" | "admin-api",
): Promise<boolean> {
  const limiter = c.env.SIGN_IN_LIMITER;
  if (!limiter) return true;
  const { success } = await limiter.limit({ key: `${scope}:${clientKey(c.req.header("CF-Connecting-IP"))}` });
  // The address is not logged: it is personal data, and the count is what tells an attack.
  if (!success) log("warn", "admin credential attempts rate-limited", { scope });
  return success;
}
