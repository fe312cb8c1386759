/**
 * Segment de-duplicates on `messageId`, so a webhook Vero delivers twice
 * must carry the same id both times, and two different webhooks never the
 * same. The id is a 128-bit hash of the webhook's whole JSON content in a
 * canonical form (object keys sorted), so key order, whitespace and
 * URL-encoding do not change it.
 *
 * The hash is MurmurHash3 x86_128 (seed 0) of the canonical form's UTF-8
 * bytes, not a cryptographic one: it runs on every webhook, synchronously
 * (crypto.subtle is asynchronous and the mapper is a plain function), and a
 * SHA-256 written in JavaScript was most of the mapping's time. Why 128
 * non-cryptographic bits are enough:
 * - The canonical form is injective (different JSON values give different
 *   strings), so a shared id needs a hash collision.
 * - Murmur3's output is well distributed on non-adversarial input (it
 *   passes SMHasher), so collisions follow the birthday bound: among n
 *   webhooks, about n² / 2^129. A trillion (2^40) webhooks give a chance
 *   of about 2^-49 that any two share an id; Segment only de-duplicates
 *   within its own window, far fewer.
 * - Crafting a collision on purpose is feasible for Murmur3, but only for
 *   whoever holds VERO_WEBHOOK_TOKEN, and it could only make Segment drop
 *   one event that the same sender could as well have left out.
 * Earlier builds used SHA-256 (64 hex digits, where these have 32), so a
 * webhook Vero retried across that upgrade gets a new id and may reach
 * Segment twice (see docs/inbound.md).
 */

/**
 * The canonical form is written straight into a byte buffer as UTF-8, and
 * hashed there: no strings are built per key and value, and the hash reads
 * bytes without encoding a string first. Reused between calls: the mapper is
 * synchronous, so no two calls share it at once.
 */
let bytes = new Uint8Array(4096);
let length = 0;

/** JSON with object keys sorted at every depth; arrays keep their order. */
export function canonicalJson(value: unknown): string {
  writeCanonical(value);
  return decoder.decode(bytes.subarray(0, length));
}

const decoder = new TextDecoder();

function writeCanonical(value: unknown): void {
  length = 0;
  write(value);
}

function write(value: unknown): void {
  if (typeof value === "string") {
    writeString(value);
    return;
  }
  if (typeof value !== "object" || value === null) {
    // Top-level undefined cannot come out of JSON.parse; render it as null rather than crash.
    writeAscii(JSON.stringify(value) ?? "null");
    return;
  }
  if (Array.isArray(value)) {
    writeByte(0x5b); // [
    for (let i = 0; i < value.length; i++) {
      if (i > 0) writeByte(0x2c); // ,
      // JSON.stringify writes a hole or an undefined item as null; so does this.
      const item: unknown = value[i];
      if (item === undefined) writeAscii("null");
      else write(item);
    }
    writeByte(0x5d); // ]
    return;
  }
  const record = value as Record<string, unknown>;
  const keys = sortedKeys(record);
  writeByte(0x7b); // {
  let first = true;
  for (const key of keys) {
    const item = record[key];
    if (item === undefined) continue;
    if (!first) writeByte(0x2c); // ,
    first = false;
    writeString(key);
    writeByte(0x3a); // :
    write(item);
  }
  writeByte(0x7d); // }
}

/**
 * Object.keys, sorted as Array#sort sorts strings (by UTF-16 code units, as `<` compares them).
 * Webhook objects have a handful of keys, where an insertion sort beats the generic sort's
 * comparator calls; a large object takes the generic sort.
 */
function sortedKeys(record: Record<string, unknown>): string[] {
  const keys = Object.keys(record);
  if (keys.length > 32) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i] as string;
    let j = i - 1;
    for (; j >= 0 && (keys[j] as string) > key; j--) keys[j + 1] = keys[j] as string;
    keys[j + 1] = key;
  }
  return keys;
}

function reserve(extra: number): void {
  if (length + extra <= bytes.length) return;
  const grown = new Uint8Array(Math.max(bytes.length * 2, length + extra));
  grown.set(bytes.subarray(0, length));
  bytes = grown;
}

function writeByte(byte: number): void {
  reserve(1);
  bytes[length++] = byte;
}

/** Text known to be ASCII without anything to escape: numbers, true, false, null. */
function writeAscii(text: string): void {
  reserve(text.length);
  for (let i = 0; i < text.length; i++) bytes[length++] = text.charCodeAt(i);
}

/**
 * A string as JSON.stringify writes it, in UTF-8. Most strings need no
 * escaping and are encoded here; one that does (a quote, a backslash, a
 * control character, a lone surrogate) is rewritten from JSON.stringify.
 */
function writeString(text: string): void {
  const start = length;
  // Quotes, and at most 3 UTF-8 bytes per UTF-16 code unit.
  reserve(text.length * 3 + 2);
  bytes[length++] = 0x22;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      if (c < 0x20 || c === 0x22 || c === 0x5c) {
        rewriteEscaped(start, text);
        return;
      }
      bytes[length++] = c;
    } else if (c < 0x800) {
      bytes[length++] = 0xc0 | (c >> 6);
      bytes[length++] = 0x80 | (c & 0x3f);
    } else if (c < 0xd800 || c > 0xdfff) {
      bytes[length++] = 0xe0 | (c >> 12);
      bytes[length++] = 0x80 | ((c >> 6) & 0x3f);
      bytes[length++] = 0x80 | (c & 0x3f);
    } else {
      const low = c <= 0xdbff ? text.charCodeAt(i + 1) : Number.NaN;
      // A lone surrogate: JSON.stringify escapes it.
      if (!(low >= 0xdc00 && low <= 0xdfff)) {
        rewriteEscaped(start, text);
        return;
      }
      const point = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
      bytes[length++] = 0xf0 | (point >> 18);
      bytes[length++] = 0x80 | ((point >> 12) & 0x3f);
      bytes[length++] = 0x80 | ((point >> 6) & 0x3f);
      bytes[length++] = 0x80 | (point & 0x3f);
      i++;
    }
  }
  bytes[length++] = 0x22;
}

function rewriteEscaped(start: number, text: string): void {
  length = start;
  // JSON.stringify's output has only ASCII escapes and well-formed text: the encoder writes it as is.
  const json = JSON.stringify(text);
  reserve(json.length * 3);
  length += encoder.encodeInto(json, bytes.subarray(length)).written;
}

const encoder = new TextEncoder();

/** MurmurHash3 x86_128 (seed 0) of the UTF-8 bytes of `input`, as 32 lowercase hex digits (h1 h2 h3 h4). */
export function murmur3Hex(input: string): string {
  const encoded = encoder.encode(input);
  return murmur3(encoded, encoded.length);
}

function murmur3(data: Uint8Array, size: number): string {
  let h1 = 0;
  let h2 = 0;
  let h3 = 0;
  let h4 = 0;
  const blocksEnd = size - (size & 15);
  for (let i = 0; i < blocksEnd; i += 16) {
    let k1 = word(data, i);
    let k2 = word(data, i + 4);
    let k3 = word(data, i + 8);
    let k4 = word(data, i + 12);

    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 ^= k1;
    h1 = (Math.imul(rotl(h1, 19) + h2, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 ^= k2;
    h2 = (Math.imul(rotl(h2, 17) + h3, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 ^= k3;
    h3 = (Math.imul(rotl(h3, 15) + h4, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 ^= k4;
    h4 = (Math.imul(rotl(h4, 13) + h1, 5) + 0x32ac3b17) | 0;
  }

  // The last 0-15 data, little-endian into k1..k4; only the words they reach are mixed in.
  const tail = size & 15;
  if (tail > 0) {
    let k1 = 0;
    let k2 = 0;
    let k3 = 0;
    let k4 = 0;
    for (let j = tail - 1; j >= 0; j--) {
      const byte = data[blocksEnd + j] as number;
      if (j >= 12) k4 |= byte << ((j - 12) * 8);
      else if (j >= 8) k3 |= byte << ((j - 8) * 8);
      else if (j >= 4) k2 |= byte << ((j - 4) * 8);
      else k1 |= byte << (j * 8);
    }
    if (tail > 12) h4 ^= Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    if (tail > 8) h3 ^= Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    if (tail > 4) h2 ^= Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h1 ^= Math.imul(rotl(Math.imul(k1, C1), 15), C2);
  }

  h1 ^= size;
  h2 ^= size;
  h3 ^= size;
  h4 ^= size;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  return hex(h1) + hex(h2) + hex(h3) + hex(h4);
}

const C1 = 0x239b961b;
const C2 = 0xab0e9789 | 0;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93 | 0;

const rotl = (x: number, n: number): number => (x << n) | (x >>> (32 - n));

const word = (bytes: Uint8Array, i: number): number =>
  (bytes[i] as number) |
  ((bytes[i + 1] as number) << 8) |
  ((bytes[i + 2] as number) << 16) |
  ((bytes[i + 3] as number) << 24);

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

const HEX_BYTES = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

// Four table look-ups: Number#toString(16) and padStart were a sixth of the id's time.
const hex = (h: number): string =>
  `${HEX_BYTES[h >>> 24]}${HEX_BYTES[(h >>> 16) & 0xff]}${HEX_BYTES[(h >>> 8) & 0xff]}${HEX_BYTES[h & 0xff]}`;

/** The messageId of a webhook: `vero-` and the MurmurHash3 x86_128 of its canonical JSON. */
export function veroMessageId(webhook: unknown): string {
  writeCanonical(webhook);
  return `vero-${murmur3(bytes, length)}`;
}
