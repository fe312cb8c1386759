/**
 * Limits on the shape of untrusted JSON. JSON.parse itself copes with any
 * nesting a 1 MiB body can hold, but what follows it (JSON.stringify,
 * structuredClone, the canonical form behind inbound messageIds) recurses,
 * and a stack overflow there would be a 500 for Vero or a retryable 503 for
 * Segment, retried for hours. No real Vero or Segment payload nests anywhere
 * near this deep.
 */
export const MAX_JSON_DEPTH = 32;

const encoder = new TextEncoder();

/** Size of `value` as JSON in UTF-8, the measure Segment's and Cloudflare Queues' limits use. */
export const jsonBytes = (value: unknown): number => encoder.encode(JSON.stringify(value)).byteLength;

/**
 * `items` in order, split into runs of at most `maxItems` whose sizes
 * (`sizeOf`) add up to at most `maxBytes`; an item larger than that alone
 * goes alone.
 */
export function chunkWithin<T>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  { maxItems, maxBytes }: { maxItems: number; maxBytes: number },
): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let currentBytes = 0;
  for (const item of items) {
    const bytes = sizeOf(item);
    if (current.length > 0 && (current.length >= maxItems || currentBytes + bytes > maxBytes)) {
      chunks.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(item);
    currentBytes += bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * Whether `value` nests more than `limit` objects or arrays inside one
 * another (a flat object is depth 1). Iterative, so that measuring a hostile
 * value cannot overflow the stack it protects, and it stops at the first
 * branch over the limit.
 */
export function exceedsDepth(value: unknown, limit: number = MAX_JSON_DEPTH): boolean {
  // Two parallel stacks rather than one of [node, depth] pairs: no allocation per node.
  const nodes: unknown[] = [value];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop();
    const depth = depths.pop() as number;
    if (typeof node !== "object" || node === null) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === "object" && child !== null) {
        nodes.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/** A JSON object: not null, not an array. */
export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
