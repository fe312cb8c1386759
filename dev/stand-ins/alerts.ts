/**
 * A stand-in for an alert receiver: a chat incoming webhook at
 * `/hooks/<tenant>`, holding the body to what both Slack (a non-empty
 * `text`) and Discord (`content`, at most 2000 characters) require. It
 * records and fails on command like the other stand-ins.
 */
import { isRecord, parseJson, type StandIn, type StandInOptions, startStandIn, type Verdict } from "./harness.ts";

export const ALERT_HOOK_PATH = "/hooks/";
export const DISCORD_MAX_CONTENT = 2000;

export function judgeAlert(request: { method: string; path: string; raw: Buffer }, knows: (key: string) => boolean) {
  const key = decodeURIComponent(request.path.slice(ALERT_HOOK_PATH.length));
  const answer = (status: number, message: string, parsed?: unknown): Verdict => ({
    status,
    body: { message },
    tenant: request.path.startsWith(ALERT_HOOK_PATH) && knows(key) ? key : undefined,
    parsed,
  });
  if (!request.path.startsWith(ALERT_HOOK_PATH) || !knows(key)) return answer(404, "no such webhook");
  if (request.method !== "POST") return answer(405, "use POST");
  const json = parseJson(request.raw);
  if (!json.ok || !isRecord(json.value)) return answer(400, json.ok ? "body must be a JSON object" : json.message);
  const body = json.value;
  if (typeof body.text !== "string" || body.text.trim() === "") return answer(400, "no_text (Slack)", body);
  if (typeof body.content !== "string" || body.content.length > DISCORD_MAX_CONTENT)
    return answer(400, `content must be a string of at most ${DISCORD_MAX_CONTENT} characters (Discord)`, body);
  return answer(200, "ok", body);
}

export function startAlertStandIn(
  options: Pick<StandInOptions, "tenants" | "onCall"> = {},
  port = 0,
): Promise<StandIn> {
  return startStandIn({ service: "alerts", handle: judgeAlert, ...options }, port);
}
