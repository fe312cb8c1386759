/**
 * The console's sign-in session: a signed cookie holding its expiry. It is
 * signed with a key derived from the ADMIN_TOKEN value the operator signed in
 * with, and checked against each configured value: rotating the token keeps
 * sessions of the value still configured, and signs out those of the value
 * removed. Nothing is stored server-side.
 */
import type { Context } from "hono";
import { deleteCookie, getSignedCookie, setSignedCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";

export const SESSION_HOURS = 8;
const COOKIE = "bridge_console";

/** Separates this key from any other use of the token. */
const keyFor = (token: string) => `vero-segment-bridge console session\n${token}`;

/** Browsers refuse `Secure` cookies over plain http, which `npm start` serves on loopback. */
function isLoopback(c: Context): boolean {
  const host = new URL(c.req.url).hostname;
  return host === "localhost" || host === "127.0.0.1" || host === "[::1]";
}

function cookieOptions(c: Context): CookieOptions {
  const secure = !isLoopback(c);
  return {
    path: "/",
    httpOnly: true,
    sameSite: "Strict",
    secure,
    // `__Host-`: a sibling subdomain cannot plant or overwrite the cookie; it needs Secure.
    ...(secure ? { prefix: "host" as const } : {}),
  };
}

export async function startSession(c: Context, token: string, now = Date.now()): Promise<void> {
  const expires = now + SESSION_HOURS * 3_600_000;
  await setSignedCookie(c, COOKIE, String(expires), keyFor(token), {
    ...cookieOptions(c),
    maxAge: SESSION_HOURS * 3600,
    expires: new Date(expires),
  });
}

export function endSession(c: Context): void {
  const options = cookieOptions(c);
  deleteCookie(c, COOKIE, { path: options.path, secure: options.secure, prefix: options.prefix });
}

/** Whether the request carries an unexpired session signed for one of `tokens`. */
export async function hasSession(c: Context, tokens: readonly string[], now = Date.now()): Promise<boolean> {
  const prefix = cookieOptions(c).prefix;
  for (const token of tokens) {
    const value = await getSignedCookie(c, keyFor(token), COOKIE, prefix);
    if (typeof value === "string" && Number(value) > now) return true;
  }
  return false;
}
