/**
 * The console's sign-in session: a signed cookie holding a random session id
 * and its expiry, and, with the ledger bound, a row per session in D1 that
 * signing out deletes, so a copied cookie stops working too. The cookie is
 * signed with a key derived from the ADMIN_TOKEN value the operator signed
 * in with, and checked against each configured value: rotating the token
 * keeps sessions of the value still configured, and signs out those of the
 * value removed. Without the ledger the signed cookie alone is the session
 * (docs/security.md says what that gives up).
 */
import type { Context } from "hono";
import { deleteCookie, getSignedCookie, setSignedCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";
import { BridgeError } from "../shared/errors.ts";
import { describeError } from "../shared/log.ts";

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

/** A session query that fails (the ledger unreachable, or migrations/0004 not applied) is a 503 saying so. */
async function sessionQuery<T>(query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (error) {
    throw new BridgeError(
      503,
      "ledger_unavailable",
      `the console's sessions could not be read or written (is migrations/0004_sessions.sql applied?): ${describeError(error)}`,
      { cause: error },
    );
  }
}

/** What a valid signed cookie holds. */
interface SessionCookie {
  id: string;
  expires: number;
}

async function readCookie(c: Context, tokens: readonly string[]): Promise<SessionCookie | undefined> {
  const prefix = cookieOptions(c).prefix;
  for (const token of tokens) {
    const value = await getSignedCookie(c, keyFor(token), COOKIE, prefix);
    const match = typeof value === "string" ? /^([0-9a-f-]{36})\.(\d{1,15})$/.exec(value) : null;
    if (match) return { id: match[1] as string, expires: Number(match[2]) };
  }
  return undefined;
}

export async function startSession(c: Context, token: string, db: D1Database | undefined, now = Date.now()) {
  const id = crypto.randomUUID();
  const expires = now + SESSION_HOURS * 3_600_000;
  if (db) {
    await sessionQuery(() =>
      db.batch([
        db.prepare("DELETE FROM console_sessions WHERE expires_at <= ?1").bind(new Date(now).toISOString()),
        db
          .prepare("INSERT INTO console_sessions (id, expires_at) VALUES (?1, ?2)")
          .bind(id, new Date(expires).toISOString()),
      ]),
    );
  }
  await setSignedCookie(c, COOKIE, `${id}.${expires}`, keyFor(token), {
    ...cookieOptions(c),
    maxAge: SESSION_HOURS * 3600,
    expires: new Date(expires),
  });
}

/** Ends the session server-side (its row), then in the browser (its cookie). */
export async function endSession(c: Context, tokens: readonly string[], db: D1Database | undefined): Promise<void> {
  const session = await readCookie(c, tokens);
  if (session && db)
    await sessionQuery(() => db.prepare("DELETE FROM console_sessions WHERE id = ?1").bind(session.id).run());
  const options = cookieOptions(c);
  deleteCookie(c, COOKIE, { path: options.path, secure: options.secure, prefix: options.prefix });
}

/** Whether the request carries an unexpired session signed for one of `tokens`, and not signed out. */
export async function hasSession(
  c: Context,
  tokens: readonly string[],
  db: D1Database | undefined,
  now = Date.now(),
): Promise<boolean> {
  const session = await readCookie(c, tokens);
  if (!session || session.expires <= now) return false;
  if (!db) return true;
  const row = await sessionQuery(() =>
    db
      .prepare("SELECT 1 AS live FROM console_sessions WHERE id = ?1 AND expires_at > ?2")
      .bind(session.id, new Date(now).toISOString())
      .first<{ live: number }>(),
  );
  return row !== null;
}
