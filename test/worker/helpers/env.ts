import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { inject } from "vitest";
import { DEV_SECRETS } from "../../../dev/dev-settings.ts";
import { StandInClient } from "../../../dev/stand-ins/client.ts";
import worker from "../../../src/index.ts";
import type { Env } from "../../../src/shared/env.ts";
import { hmacSha1Hex } from "../../../src/shared/secrets.ts";

export const segment = new StandInClient(inject("segmentOrigin"));
export const vero = new StandInClient(inject("veroOrigin"));

/** The bindings from vitest.config.ts: every direction configured, pointing at the stand-ins. */
export const baseEnv = env as unknown as Env;

/**
 * Settings of their own for one test: fresh stand-in tenants, so that what
 * the stand-ins record belongs to this test alone, even in parallel runs,
 * and a Vero account (VERO_ACCOUNT) of its own, so its mailboxes are too.
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
  const { SEGMENT_QUEUE, VERO_QUEUE, VERO_OVERFLOW_QUEUE: _overflow, LEDGER, ...inline } = baseEnv;
  const bindings: Env = {
    ...inline,
    ...(queued ? { SEGMENT_QUEUE, VERO_QUEUE } : {}),
    ...(ledger ? { LEDGER } : {}),
  };
  return {
    // A Vero account of its own too: the mailboxes are named by account and user, and tests reuse the fixtures' users.
    env: {
      ...bindings,
      SEGMENT_WRITE_KEY: writeKey,
      VERO_AUTH_TOKEN: veroToken,
      VERO_ACCOUNT: `test-${crypto.randomUUID()}`,
      ...overrides,
    },
    writeKey,
    veroToken,
  };
}

/**
 * Calls the Worker's fetch handler as the runtime would, and waits for its
 * background work, and for the mailboxes it handed events to to have
 * delivered what is due: what Vero received can then be read at once.
 */
export async function callWorker(request: Request, workerEnv: Env = baseEnv): Promise<Response> {
  const ctx = createExecutionContext();
  const { observed, touched } = observingMailboxes(workerEnv);
  const response = await worker.fetch(request, observed, ctx);
  await waitOnExecutionContext(ctx);
  await mailboxesIdle(workerEnv, touched);
  return response;
}

/** `env` with a MAILBOX namespace that notes which mailboxes are called, for `mailboxesIdle`. */
export function observingMailboxes(env: Env): { observed: Env; touched: DurableObjectId[] } {
  const touched: DurableObjectId[] = [];
  const namespace = env.MAILBOX;
  if (!namespace) return { observed: env, touched };
  const recording = {
    idFromName: (name: string) => namespace.idFromName(name),
    get: (id: DurableObjectId) => {
      touched.push(id);
      return namespace.get(id);
    },
  };
  return { observed: { ...env, MAILBOX: recording as unknown as NonNullable<Env["MAILBOX"]> }, touched };
}

/**
 * Waits until none of `ids` has a head job that is due or not yet tried
 * (one waiting for its retry does not count): their alarms have run. An event, not a time: it
 * polls the objects' own storage.
 */
export async function mailboxesIdle(env: Env, ids: readonly DurableObjectId[]): Promise<void> {
  // The real namespace: a test may have handed the Worker a double of it.
  const namespace = env.MAILBOX && baseEnv.MAILBOX;
  if (!namespace) return;
  for (;;) {
    let due = 0;
    for (const id of ids) {
      // The head job decides: the jobs behind it wait for it, due or not.
      due += await runInDurableObject(namespace.get(id), (_instance, state) => {
        const [head] = state.storage.sql
          .exec<{ next_at: number; attempts: number }>(
            "SELECT next_at, attempts FROM jobs ORDER BY at, rseq, seq LIMIT 1",
          )
          .toArray();
        // A job never tried waits only for the queue's settle window: it counts as due.
        return head && (head.attempts === 0 || head.next_at <= Date.now()) ? 1 : 0;
      });
    }
    if (due === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
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

/** POST /v1/<call> as a Segment server library does: Basic with the write key (the development shared secret). */
export function postApi(workerEnv: Env, call: string, body: unknown): Promise<Response> {
  return callWorker(
    new Request(`http://bridge/v1/${call}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { Authorization: basic(DEV_SECRETS.SEGMENT_SHARED_SECRET), "content-type": "application/json" },
    }),
    workerEnv,
  );
}

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
