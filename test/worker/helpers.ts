import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import { DEV_SECRETS } from "../../dev/dev-settings.ts";
import { StandInClient } from "../../dev/stand-ins/client.ts";
import worker from "../../src/index.ts";
import type { Env } from "../../src/shared/env.ts";
import { hmacSha1Hex } from "../../src/shared/secrets.ts";

export const segment = new StandInClient(inject("segmentOrigin"));
export const vero = new StandInClient(inject("veroOrigin"));

/** The bindings from vitest.config.ts: every direction configured, pointing at the stand-ins. */
export const baseEnv = env as unknown as Env;

/**
 * Settings of their own for one test: fresh stand-in tenants, so that what
 * the stand-ins record belongs to this test alone, even in parallel runs.
 * Without the queue bindings (inline mode) unless `queued` asks for them.
 * The ledger (LEDGER) is shared by the tests of a file, and many reuse the
 * fixtures' messageIds: it is bound in queue mode (which requires it) or
 * when `ledger` asks for it, so that other tests see no de-duplication.
 */
export async function isolatedEnv(
  overrides: Partial<Env> = {},
  { queued = false, ledger = queued }: { queued?: boolean; ledger?: boolean } = {},
): Promise<{ env: Env; writeKey: string; veroToken: string }> {
  const [writeKey, veroToken] = await Promise.all([segment.tenant(), vero.tenant()]);
  const { SEGMENT_QUEUE, VERO_QUEUE, LEDGER, ...inline } = baseEnv;
  const bindings: Env = {
    ...inline,
    ...(queued ? { SEGMENT_QUEUE, VERO_QUEUE } : {}),
    ...(ledger ? { LEDGER } : {}),
  };
  return {
    env: { ...bindings, SEGMENT_WRITE_KEY: writeKey, VERO_AUTH_TOKEN: veroToken, ...overrides },
    writeKey,
    veroToken,
  };
}

/** Calls the Worker's fetch handler as the runtime would, and waits for its background work. */
export async function callWorker(request: Request, workerEnv: Env = baseEnv): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(request, workerEnv, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

/** A Vero webhook with the development token, as Vero sends it. */
export const postWebhook = (workerEnv: Env, body: unknown) =>
  callWorker(
    new Request(`http://bridge/vero/webhook?token=${DEV_SECRETS.VERO_WEBHOOK_TOKEN}`, {
      method: "POST",
      body: JSON.stringify(body),
    }),
    workerEnv,
  );

/** A Segment request to /segment signed with the development shared secret, as Segment's Webhooks destination sends it. */
export async function postSegment(workerEnv: Env, body: unknown): Promise<Response> {
  const raw = JSON.stringify(body);
  const signature = await hmacSha1Hex(DEV_SECRETS.SEGMENT_SHARED_SECRET, raw);
  return callWorker(
    new Request("http://bridge/segment", { method: "POST", body: raw, headers: { "X-Signature": signature } }),
    workerEnv,
  );
}

export const basic = (secret: string) => `Basic ${btoa(`${secret}:`)}`;

export interface ErrorBody {
  ok: false;
  /** The error's code and message again at the top, where Segment's libraries read them. */
  code: string;
  message: string;
  error: { status: number; code: string; message: string; details?: unknown };
}

/** Asserts the shape every error response has, and returns it. */
export async function expectJsonError(response: Response, status: number): Promise<ErrorBody> {
  const text = await response.text();
  if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}: ${text}`);
  if (!response.headers.get("content-type")?.includes("application/json")) {
    throw new Error(`expected a JSON error, got content-type ${response.headers.get("content-type")}: ${text}`);
  }
  const body = JSON.parse(text) as ErrorBody;
  if (
    body.ok !== false ||
    body.error.status !== status ||
    typeof body.error.message !== "string" ||
    body.error.message === "" ||
    body.code !== body.error.code ||
    body.message !== body.error.message
  ) {
    throw new Error(`error body lacks { ok: false, code, message, error: { status, code, message } }: ${text}`);
  }
  return body;
}
