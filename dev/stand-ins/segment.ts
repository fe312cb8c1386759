/**
 * A stand-in for Segment's Tracking API (https://api.segment.io/v1/...),
 * enforcing what the real one enforces: the write key as Basic auth (or
 * `writeKey` in the body), 32 KB per event, 500 KB per batch request, and
 * a `userId` or `anonymousId` on every message.
 */
import { isRecord, parseJson, type StandIn, type StandInOptions, startStandIn, type Verdict } from "./harness.ts";

export const SEGMENT_MAX_EVENT_BYTES = 32 * 1024;
export const SEGMENT_MAX_BATCH_BYTES = 500 * 1024;

const SINGLE_CALLS = new Set(["track", "identify", "page", "screen", "group", "alias"]);

function writeKeyOf(authorization: string | undefined, body: unknown): string | undefined {
  const match = authorization?.match(/^Basic\s+(\S+)$/i);
  if (match?.[1]) {
    const decoded = Buffer.from(match[1], "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    return colon === -1 ? decoded : decoded.slice(0, colon);
  }
  return isRecord(body) && typeof body.writeKey === "string" ? body.writeKey : undefined;
}

const hasIdentity = (value: unknown) => (typeof value === "string" && value.length > 0) || typeof value === "number";

/** Why Segment would refuse one message, or undefined when it takes it. */
function messageProblem(message: unknown, index: number | undefined): string | undefined {
  const where = index === undefined ? "message" : `batch[${index}]`;
  if (!isRecord(message)) return `${where} is not an object`;
  if (typeof message.type !== "string" || !SINGLE_CALLS.has(message.type))
    return `${where}.type must be one of ${[...SINGLE_CALLS].join(", ")}`;
  if (!hasIdentity(message.userId) && !hasIdentity(message.anonymousId))
    return `${where} needs a userId or an anonymousId`;
  if (message.type === "track" && (typeof message.event !== "string" || message.event.length === 0))
    return `${where}.event is required for track`;
  if (Buffer.byteLength(JSON.stringify(message)) > SEGMENT_MAX_EVENT_BYTES) return `${where} is over 32 KB`;
  return undefined;
}

const refuse = (status: number, message: string, tenant?: string, parsed?: unknown): Verdict => ({
  status,
  body: { success: false, message },
  tenant,
  parsed,
});

export function judgeSegmentRequest(
  request: { method: string; path: string; headers: Record<string, string | string[] | undefined>; raw: Buffer },
  knows: (key: string) => boolean,
): Verdict {
  const call = request.path.match(/^\/v1\/(\w+)$/)?.[1];
  if (!call || (call !== "batch" && !SINGLE_CALLS.has(call))) return refuse(404, `no such endpoint ${request.path}`);
  if (request.method !== "POST") return refuse(405, `${request.method} is not allowed, use POST`);

  const json = parseJson(request.raw);
  const writeKey = writeKeyOf(request.headers.authorization as string | undefined, json.ok ? json.value : undefined);
  if (!writeKey || !knows(writeKey))
    return refuse(401, "invalid write key", undefined, json.ok ? json.value : undefined);
  if (!json.ok) return refuse(400, json.message, writeKey);
  const body = json.value;

  if (call === "batch") {
    if (request.raw.length > SEGMENT_MAX_BATCH_BYTES)
      return refuse(400, "batch request is over 500 KB", writeKey, body);
    if (!isRecord(body) || !Array.isArray(body.batch))
      return refuse(400, "body must be { batch: [...] }", writeKey, body);
    for (const [index, message] of body.batch.entries()) {
      const problem = messageProblem(message, index);
      if (problem) return refuse(400, problem, writeKey, body);
    }
  } else {
    const message = isRecord(body) ? { ...body, type: body.type ?? call } : body;
    const problem = messageProblem(message, undefined);
    if (problem) return refuse(400, problem, writeKey, body);
  }
  return { status: 200, body: { success: true }, tenant: writeKey, parsed: body };
}

export function startSegmentStandIn(
  options: Pick<StandInOptions, "tenants" | "onCall"> = {},
  port = 0,
): Promise<StandIn> {
  return startStandIn({ service: "segment", handle: judgeSegmentRequest, ...options }, port);
}
