/**
 * The event tester: a Segment event (or body, or a Vero dead letter's job)
 * or a Vero webhook (or a Segment dead letter's job) in, the filter decision
 * and the exact upstream calls out, the credentials masked by the name of
 * their setting. The routes' own functions decide (routeEvent,
 * droppedType, mapVeroWebhook), so the tester shows what the routes would do.
 * Sending goes through the same hand-overs: the users' mailboxes, Segment's
 * inline delivery.
 */

import { segmentJobSchema } from "../inbound/job.ts";
import type { SegmentMessage } from "../inbound/map.ts";
import { mapVeroWebhook } from "../inbound/map.ts";
import { deliverToSegment } from "../inbound/segment.ts";
import { droppedType, parseWebhookBody } from "../inbound/webhook.ts";
import { veroJobOf } from "../outbound/enqueue.ts";
import { routeEvent } from "../outbound/handle.ts";
import { type VeroJob, veroJobSchema } from "../outbound/job.ts";
import { handJobsToMailboxes, mailboxConfigFor } from "../outbound/mailboxes.ts";
import { segmentEventsOf } from "../outbound/schema.ts";
import { bodyWithCredential } from "../outbound/vero.ts";
import type { Env } from "../shared/env.ts";
import { BridgeError, badRequest, DeliveryError } from "../shared/errors.ts";
import { notConfigured } from "../shared/http.ts";
import { isRecord } from "../shared/json.ts";
import { type Configured, settingsFor, type VeroCredential } from "../shared/settings.ts";

export interface TesterCall {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body: unknown;
}

export interface TesterEvent {
  messageId: string | null;
  index: number;
  outcome: "send" | "skipped" | "filtered" | "invalid";
  reason?: string;
  error?: string;
  /** The filter that dropped or sampled the event out; `editedBy`, those that removed properties. */
  filter?: string;
  editedBy?: string[];
  calls: TesterCall[];
}

export type Sent =
  | { ok: true; detail: string }
  | { ok: false; retryable: boolean; status?: number; error: string; user?: string };

export interface TesterResult {
  direction: "outbound" | "inbound";
  events: TesterEvent[];
  /** Only when sent: what the hand-over answered. */
  sent?: Sent[];
}

function ready<T>(name: "outbound" | "inbound", state: Configured<T>): T {
  if (!state.ready) throw notConfigured(name, state);
  return state.settings;
}

/** The credential as its setting's name: where it is sent is shown, never its value. */
const maskedVeroCredential = (credential: VeroCredential) =>
  "tracking_api_key" in credential
    ? { tracking_api_key: "<VERO_TRACKING_API_KEY>" }
    : { auth_token: "<VERO_AUTH_TOKEN>" };

const isJob = (json: unknown, kind: "vero" | "segment") => isRecord(json) && json.kind === kind && "v" in json;

/** Parsed JSON of what was pasted, or the 400 that says why not. */
function jsonOf(raw: unknown): unknown {
  if (typeof raw !== "string") return raw;
  try {
    return JSON.parse(raw);
  } catch {
    throw badRequest("the payload is not valid JSON");
  }
}

/** Outbound: what the routes would do with `raw` (one event, `{ batch }`, an array, or a Vero job from a dead letter). */
export async function testSegmentEvents(env: Env, raw: unknown, send = false): Promise<TesterResult> {
  const json = jsonOf(raw);
  const settings = ready("outbound", settingsFor(env).outbound);
  const credential = maskedVeroCredential(settings.veroCredential);
  const callsOf = (requests: VeroJob["requests"]): TesterCall[] =>
    requests.map((request) => ({
      method: request.method,
      url: `${settings.veroApiUrl}${request.path}`,
      body: bodyWithCredential(request, credential),
    }));

  let jobs: VeroJob[];
  let events: TesterEvent[];
  if (isJob(json, "vero")) {
    const parsed = veroJobSchema.safeParse(json);
    if (!parsed.success) throw badRequest("the payload looks like a Vero queue job but is not a valid one");
    const job = parsed.data;
    const requests = job.requests.slice(job.step ?? 0);
    jobs = [job];
    events = [{ messageId: job.messageId, index: 0, outcome: "send", calls: callsOf(requests) }];
  } else {
    const body = segmentEventsOf(json);
    if (!body.ok) throw badRequest(body.error);
    if (body.events.length === 0) throw badRequest("the payload holds no events");
    const options = { receivedAt: new Date(), filters: settings.filters, anonymousIds: settings.anonymousIds };
    const routed = body.events.map((input, index) => routeEvent(input, index, options));
    const at = Date.now();
    jobs = routed.filter((job) => job.requests.length > 0).map((job, seq) => veroJobOf(job, at, seq));
    events = routed.map(({ result, requests, editedBy }) => ({
      messageId: result.messageId,
      index: result.index,
      outcome: result.outcome === "failed" ? "send" : (result.outcome as TesterEvent["outcome"]),
      ...(result.reason ? { reason: result.reason } : {}),
      ...(result.error ? { error: result.error } : {}),
      ...(result.filter ? { filter: result.filter } : {}),
      ...(editedBy ? { editedBy } : {}),
      calls: callsOf(requests),
    }));
  }
  if (!send) return { direction: "outbound", events };
  return { direction: "outbound", events, sent: await sendToMailboxes(env, jobs) };
}

/** The one place the tester hands jobs on: the users' mailboxes, as the routes without a queue and a re-drive do. */
async function sendToMailboxes(env: Env, jobs: VeroJob[]): Promise<Sent[]> {
  if (jobs.length === 0) return [{ ok: true, detail: "nothing to send" }];
  const config = mailboxConfigFor(env);
  if (!config.ok) throw new BridgeError(503, "not_configured", config.reason);
  const { handed } = await handJobsToMailboxes(env, config, jobs, (job) => job);
  return handed.map((group): Sent => {
    if (!group.ok) return { ok: false, retryable: true, error: group.error };
    const { accepted, skipped } = group.result;
    return {
      ok: true,
      detail: `the user's mailbox took ${accepted} job(s) and delivers them in order${skipped > 0 ? `; ${skipped} it already held or delivered (same messageId) were skipped` : ""}`,
    };
  });
}

/** Inbound: what the webhook route would send Segment for `raw` (a webhook, or a Segment job from a dead letter). */
export async function testVeroWebhook(env: Env, raw: unknown, send = false): Promise<TesterResult> {
  const text = typeof raw === "string" ? raw : JSON.stringify(raw);
  const json = parseWebhookBody(text);
  const inbound = ready("inbound", settingsFor(env).inbound);
  const event = (fields: Omit<TesterEvent, "index" | "calls" | "messageId">, message?: SegmentMessage) => ({
    direction: "inbound" as const,
    events: [
      {
        messageId: message?.messageId ?? null,
        index: 0,
        ...fields,
        calls: message
          ? [
              {
                method: "POST",
                url: `${inbound.segmentApiHost}/v1/batch`,
                headers: { Authorization: "Basic <SEGMENT_WRITE_KEY>" },
                body: { batch: [message] },
              },
            ]
          : [],
      },
    ],
  });

  let message: SegmentMessage;
  if (isJob(json, "segment")) {
    const parsed = segmentJobSchema.safeParse(json);
    if (!parsed.success) throw badRequest("the payload looks like a Segment queue job but is not a valid one");
    message = parsed.data.message;
  } else {
    const dropped = droppedType(inbound.droppedTypes, json);
    if (dropped) return event({ outcome: "filtered", reason: `VERO_WEBHOOK_TYPES_DROPPED lists ${dropped}` });
    const mapped = mapVeroWebhook(json, { receivedAt: new Date() });
    if (mapped.kind === "invalid") return event({ outcome: "invalid", error: mapped.problem.message });
    if (mapped.kind === "ignored") return event({ outcome: "skipped", reason: mapped.reason });
    message = mapped.message;
  }
  const result: TesterResult = event({ outcome: "send" }, message);
  if (!send) return result;
  try {
    await deliverToSegment(inbound, [message]);
    return { ...result, sent: [{ ok: true, detail: "Segment accepted the message" }] };
  } catch (error) {
    if (!(error instanceof DeliveryError)) throw error;
    const status = error.status !== undefined ? { status: error.status } : {};
    return { ...result, sent: [{ ok: false, retryable: error.retryable, ...status, error: error.message }] };
  }
}

/** Small examples for the console's tester, beside what can be pasted. */
export const SAMPLES: Record<string, { direction: "outbound" | "inbound"; label: string; payload: unknown }> = {
  "segment-identify": {
    direction: "outbound",
    label: "Segment identify from a phone",
    payload: {
      type: "identify",
      messageId: "tester-identify-1",
      userId: "user-1",
      traits: { email: "jane@example.com", plan: "pro" },
      context: { device: { token: "device-token-1", name: "Pixel 8" }, os: { name: "Android" }, timezone: "UTC" },
    },
  },
  "segment-track": {
    direction: "outbound",
    label: "Segment track",
    payload: {
      type: "track",
      messageId: "tester-track-1",
      userId: "user-1",
      event: "Order Completed",
      properties: { total: 42, currency: "EUR" },
    },
  },
  "vero-opened": {
    direction: "inbound",
    label: "Vero webhook: opened",
    payload: {
      type: "opened",
      opened_at: 1700000000,
      user: { id: 1, email: "jane@example.com" },
      campaign: { id: 987, type: "newsletter", name: "Weekly", subject: "This week" },
    },
  },
};
