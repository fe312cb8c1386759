/**
 * Segment de-duplicates on `messageId`, so a webhook Vero delivers twice
 * must carry the same id both times, and two different webhooks never the
 * same. The id is `vero-` and the SHA-256 (64 hex digits) of the webhook's
 * whole JSON content in a canonical form: object keys sorted at every
 * depth, arrays in order, no whitespace. Key order, whitespace and
 * URL-encoding of the body therefore do not change it.
 */
import { createHash } from "node:crypto";
import { isRecord } from "../shared/json.ts";

/**
 * Rebuilds each object with its keys sorted; JSON.stringify then walks the
 * copy's children in turn. Defined, not assigned: assigning `__proto__`
 * would set the copy's prototype and drop the key.
 */
function sortKeys(_key: string, value: unknown): unknown {
  if (!isRecord(value)) return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, value[key]]),
  );
}

/** JSON with object keys sorted at every depth; arrays keep their order. */
export const canonicalJson = (value: unknown): string => JSON.stringify(value, sortKeys) ?? "null";

/** The messageId of a webhook: `vero-` and the hex SHA-256 of its canonical JSON in UTF-8. */
export const veroMessageId = (webhook: unknown): string =>
  `vero-${createHash("sha256").update(canonicalJson(webhook)).digest("hex")}`;
