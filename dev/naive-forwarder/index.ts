/**
 * The obvious minimal forwarders, the baselines the benchmarks hold the
 * bridge against, one per direction:
 *
 * - `POST /` (Vero to Segment): parse the webhook, build a track, POST it,
 *   answer with Segment's status.
 * - `POST /segment` (Segment to Vero): parse the event, make one Vero call
 *   (`users/track` for an identify, `events/track` for anything else),
 *   answer with Vero's status.
 *
 * Deliberately nothing else (no auth, no validation, no retries, no logs),
 * so whatever the bridge costs beyond it is visible.
 *
 * Typed without Workers types on purpose: it is checked by the Node-side
 * tsconfig, and needs nothing beyond fetch, Request and Response.
 */
interface ForwarderEnv {
  SEGMENT_API_HOST?: string;
  SEGMENT_WRITE_KEY?: string;
  VERO_API_URL?: string;
  VERO_AUTH_TOKEN?: string;
}

interface VeroWebhook {
  type?: string;
  user?: { id?: string | number; email?: string };
}

interface SegmentEvent {
  type?: string;
  event?: string;
  userId?: string;
  anonymousId?: string;
  traits?: Record<string, unknown>;
  properties?: Record<string, unknown>;
  context?: { traits?: Record<string, unknown> };
}

/** POSTs JSON and answers with the upstream's status, its body drained so the connection can be reused. */
async function forward(url: string, headers: Record<string, string>, body: unknown): Promise<Response> {
  const upstream = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  await upstream.arrayBuffer();
  return new Response(null, { status: upstream.status });
}

function veroToSegment(webhook: VeroWebhook, env: ForwarderEnv): Promise<Response> {
  const track = {
    userId: webhook.user?.id === undefined ? undefined : String(webhook.user.id),
    anonymousId: webhook.user?.id === undefined ? webhook.user?.email : undefined,
    event: `Email ${webhook.type ?? "event"}`,
    properties: webhook,
  };
  return forward(
    `${env.SEGMENT_API_HOST}/v1/track`,
    { authorization: `Basic ${btoa(`${env.SEGMENT_WRITE_KEY ?? ""}:`)}` },
    track,
  );
}

function segmentToVero(event: SegmentEvent, env: ForwarderEnv): Promise<Response> {
  const id = event.userId ?? event.anonymousId;
  const email = event.traits?.email ?? event.context?.traits?.email;
  if (event.type === "identify")
    return forward(
      `${env.VERO_API_URL}/users/track`,
      {},
      {
        auth_token: env.VERO_AUTH_TOKEN,
        id,
        email,
        data: event.traits,
      },
    );
  return forward(
    `${env.VERO_API_URL}/events/track`,
    {},
    {
      auth_token: env.VERO_AUTH_TOKEN,
      identity: { id, email },
      event_name: event.event ?? event.type ?? "event",
      data: event.properties ?? event.traits ?? {},
    },
  );
}

export default {
  async fetch(request: Request, env: ForwarderEnv): Promise<Response> {
    if (request.method !== "POST") return new Response("ok");
    let json: unknown;
    try {
      json = await request.json();
    } catch {
      return new Response("invalid JSON", { status: 400 });
    }
    return new URL(request.url).pathname === "/segment"
      ? segmentToVero(json as SegmentEvent, env)
      : veroToSegment(json as VeroWebhook, env);
  },
};
