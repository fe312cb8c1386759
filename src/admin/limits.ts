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

/** The 8 groups of an IPv6 address, or undefined when it is not one. */
function ipv6Groups(address: string): number[] | undefined {
  const [head = "", tail, ...more] = address.split("::");
  const parse = (part = "") => (part ? part.split(":").map((group) => Number.parseInt(group, 16)) : []);
  const groups = parse(head);
  if (tail !== undefined)
    groups.push(...Array<number>(Math.max(0, 8 - groups.length - parse(tail).length)).fill(0), ...parse(tail));
  return more.length === 0 && groups.length === 8 && groups.every((group) => group >= 0 && group <= 0xffff)
    ? groups
    : undefined;
}

/**
 * What one client is counted as: an IPv4 address as it is, an IPv6 address
 * by its /64 (one subscriber's network: every address in it is theirs to
 * use), an IPv4-mapped IPv6 address as the IPv4 one.
 */
export function clientKey(address: string | undefined): string {
  const ip = address?.trim().toLowerCase() ?? "";
  if (ip === "") return "unknown";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (mapped?.[1]) return mapped[1];
  const groups = ip.includes(":") ? ipv6Groups(ip) : undefined;
  return groups
    ? `${groups
        .slice(0, 4)
        .map((group) => group.toString(16))
        .join(":")}::/64`
    : ip;
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
