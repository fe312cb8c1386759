/**
 * A stand-in for Vero's Track API v2 (https://api.getvero.com/api/v2),
 * enforcing what the real one enforces: `auth_token` or `tracking_api_key`
 * in the JSON body, each endpoint with its method, the fields each requires,
 * and 255 characters at most for ids, emails and event names.
 */

import { isRecord, parseJson, type StandIn, type StandInOptions, startStandIn, type Verdict } from "./harness.ts";
import { VERO_USER_NOT_FOUND } from "./types.ts";

export const VERO_API_PATH = "/api/v2";
export const VERO_MAX_FIELD_LENGTH = 255;

type Body = Record<string, unknown>;
type Rule = (body: Body) => string | undefined;

const present = (value: unknown) => (typeof value === "string" && value.length > 0) || typeof value === "number";

function tooLong(name: string, value: unknown): string | undefined {
  return present(value) && String(value).length > VERO_MAX_FIELD_LENGTH
    ? `${name} is longer than ${VERO_MAX_FIELD_LENGTH} characters`
    : undefined;
}

const userKey: Rule = (body) =>
  present(body.id) || present(body.email)
    ? (tooLong("id", body.id) ?? tooLong("email", body.email))
    : "id or email is required";

const ENDPOINTS: Record<string, { method: string; rule: Rule }> = {
  "/users/track": { method: "POST", rule: userKey },
  "/users/edit": {
    method: "PUT",
    rule: (body) => userKey(body) ?? (isRecord(body.changes) ? undefined : "changes must be an object"),
  },
  "/users/tags/edit": {
    method: "PUT",
    rule: (body) => {
      const problem = userKey(body);
      if (problem) return problem;
      const lists = [body.add, body.remove].filter((list) => list !== undefined);
      if (lists.length === 0) return "add or remove is required";
      return lists.every((list) => Array.isArray(list) && list.every((tag) => typeof tag === "string"))
        ? undefined
        : "add and remove must be arrays of strings";
    },
  },
  "/users/unsubscribe": { method: "POST", rule: userKey },
  "/users/resubscribe": { method: "POST", rule: userKey },
  "/users/delete": { method: "POST", rule: userKey },
  "/users/reidentify": {
    method: "PUT",
    rule: (body) =>
      !present(body.id) || !present(body.new_id)
        ? "id and new_id are required"
        : (tooLong("id", body.id) ?? tooLong("new_id", body.new_id)),
  },
  "/events/track": {
    method: "POST",
    rule: (body) => {
      if (!isRecord(body.identity)) return "identity is required";
      const identity = userKey(body.identity);
      if (identity) return `identity: ${identity}`;
      if (!present(body.event_name)) return "event_name is required";
      return (
        tooLong("event_name", body.event_name) ??
        (body.data === undefined || isRecord(body.data) ? undefined : "data must be an object")
      );
    },
  },
};

const answer = (status: number, message: string, tenant?: string, parsed?: unknown): Verdict => ({
  status,
  body: { status, message },
  tenant,
  parsed,
});

/**
 * Users each tenant has deleted, by id and email. Vero answers a delete of
 * a user it does not have with 404 and its usual JSON; the stand-in knows
 * only the users it saw deleted (it holds no users from before it started),
 * and forgets a deletion once the user is tracked again.
 */
const deleted = new Map<string, Set<string>>();

const userKeys = (body: Body): string[] => [body.id, body.email].filter(present).map((value) => String(value));

function keepUsers(tenant: string, path: string, body: Body): Verdict | undefined {
  const gone = deleted.get(tenant) ?? new Set<string>();
  deleted.set(tenant, gone);
  if (path === "/users/delete") {
    const keys = userKeys(body);
    if (keys.some((key) => gone.has(key))) return answer(404, VERO_USER_NOT_FOUND, tenant, body);
    for (const key of keys) gone.add(key);
    return undefined;
  }
  const seen = path === "/events/track" && isRecord(body.identity) ? userKeys(body.identity) : userKeys(body);
  if (path === "/users/reidentify" && present(body.new_id)) seen.push(String(body.new_id));
  for (const key of seen) gone.delete(key);
  return undefined;
}

export function judgeVeroRequest(
  request: { method: string; path: string; raw: Buffer },
  knows: (key: string) => boolean,
): Verdict {
  const endpoint = request.path.startsWith(VERO_API_PATH)
    ? ENDPOINTS[request.path.slice(VERO_API_PATH.length)]
    : undefined;
  if (!endpoint) return answer(404, `no such endpoint ${request.path}`);
  if (request.method !== endpoint.method)
    return answer(405, `${request.method} is not allowed, use ${endpoint.method}`);

  const json = parseJson(request.raw);
  if (!json.ok || !isRecord(json.value)) return answer(400, json.ok ? "body must be a JSON object" : json.message);
  const body = json.value;
  const key =
    typeof body.auth_token === "string"
      ? body.auth_token
      : typeof body.tracking_api_key === "string"
        ? body.tracking_api_key
        : undefined;
  if (!key || !knows(key)) return answer(401, "Unauthorized: invalid auth_token or tracking_api_key", undefined, body);
  const problem = endpoint.rule(body);
  if (problem) return answer(400, problem, key, body);
  return keepUsers(key, request.path.slice(VERO_API_PATH.length), body) ?? answer(200, "Success.", key, body);
}

export function startVeroStandIn(options: Pick<StandInOptions, "tenants" | "onCall"> = {}, port = 0): Promise<StandIn> {
  return startStandIn({ service: "vero", handle: judgeVeroRequest, ...options }, port);
}
