import type { RecordedCall } from "./stand-ins/types.ts";

const SECRET_FIELDS = new Set(["auth_token", "tracking_api_key", "writeKey"]);

/** Pretty JSON with credentials masked: the sandbox shows what would be sent, not the keys. */
function masked(value: unknown): string {
  return JSON.stringify(
    value,
    (key, field) => (SECRET_FIELDS.has(key) && typeof field === "string" ? "•••" : field),
    2,
  );
}

/** One call as the sandbox prints it: a headline, then the body indented. */
export function formatCall(call: RecordedCall): string {
  const time = new Date(call.at).toISOString().slice(11, 23);
  const verdict = call.status < 300 ? "accepted" : `refused: ${JSON.stringify(call.response)}`;
  const headline = `${time} ${call.service.padEnd(7)} ${call.method} ${call.path} -> ${call.status} ${verdict}`;
  const body = typeof call.body === "string" ? call.body : masked(call.body);
  return `${headline}\n${body.replace(/^/gm, "    ")}`;
}
