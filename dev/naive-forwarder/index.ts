/**
 * The obvious minimal Vero-to-Segment forwarder, the baseline the benchmarks
 * hold the bridge against: parse the webhook, build a track, POST it, answer
 * with Segment's status. Deliberately nothing else (no auth, no validation,
 * no retries), so whatever the bridge costs beyond it is visible.
 *
 * Typed without Workers types on purpose: it is checked by the Node-side
 * tsconfig, and needs nothing beyond fetch, Request and Response.
 */
interface ForwarderEnv {
  SEGMENT_API_HOST?: string;
  SEGMENT_WRITE_KEY?: string;
}

interface VeroWebhook {
  type?: string;
  user?: { id?: string | number; email?: string };
}

export default {
  async fetch(request: Request, env: ForwarderEnv): Promise<Response> {
    if (request.method !== "POST") return new Response("ok");
    let webhook: VeroWebhook;
    try {
      webhook = (await request.json()) as VeroWebhook;
    } catch {
      return new Response("invalid JSON", { status: 400 });
    }
    const track = {
      userId: webhook.user?.id === undefined ? undefined : String(webhook.user.id),
      anonymousId: webhook.user?.id === undefined ? webhook.user?.email : undefined,
      event: `Email ${webhook.type ?? "event"}`,
      properties: webhook,
    };
    const upstream = await fetch(`${env.SEGMENT_API_HOST}/v1/track`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Basic ${btoa(`${env.SEGMENT_WRITE_KEY ?? ""}:`)}`,
      },
      body: JSON.stringify(track),
    });
    // Drain the body so the connection can be reused, as any real forwarder would.
    await upstream.arrayBuffer();
    return new Response(null, { status: upstream.status });
  },
};
