/** The console as a browser uses it: sign-in form posts, session cookies and page visits, from the bridge's origin. */
import { expect } from "vitest";
import type { Env } from "../../../src/shared/env.ts";
import { callWorker } from "./env.ts";

export const ORIGIN = "http://127.0.0.1:8787";

/** Posts the sign-in form; each sign-in comes from a client of its own unless one is named (the limit counts per client). */
export function signIn(
  token: string,
  workerEnv: Env,
  { origin = ORIGIN, client = crypto.randomUUID() }: { origin?: string; client?: string } = {},
): Promise<Response> {
  return callWorker(
    new Request(`${origin}/admin/console/sign-in`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin, "cf-connecting-ip": client },
      body: new URLSearchParams({ token }),
      redirect: "manual",
    }),
    workerEnv,
  );
}

/** A signed-in session's cookie, as `name=value`. */
export async function sessionCookie(token: string, workerEnv: Env): Promise<string> {
  const response = await signIn(token, workerEnv);
  expect(response.status).toBe(303);
  return (response.headers.get("set-cookie") ?? "").split(";")[0] as string;
}

export const visit = (path: string, cookie: string, workerEnv: Env, init: RequestInit = {}) =>
  callWorker(
    new Request(`${ORIGIN}${path}`, { redirect: "manual", ...init, headers: { cookie, ...init.headers } }),
    workerEnv,
  );
