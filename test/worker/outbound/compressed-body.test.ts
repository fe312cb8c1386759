/** `/v1/*` bodies sent with `Content-Encoding`, as RudderStack's and Segment's Java SDKs send them. */
import { describe, expect, it } from "vitest";
import { TRACKING_API_LIMITS } from "../../../src/outbound/contract.ts";
import type { Env } from "../../../src/shared/env.ts";
import { MAX_BODY_BYTES } from "../../../src/shared/http.ts";
import { basic, callWorker, expectJsonError, isolatedEnv, vero } from "../helpers/env.ts";

const SECRET = "dev-segment-shared-secret-for-local-use";

const track = {
  userId: "u-1",
  event: "Signed Up",
  messageId: "m-1",
  timestamp: "2014-01-01T00:00:00.000Z",
  properties: { plan: "pro" },
};

async function compress(format: "gzip" | "deflate", chunks: Iterable<Uint8Array>): Promise<Uint8Array> {
  const stream = new CompressionStream(format);
  const writer = stream.writable.getWriter();
  const written = (async () => {
    for (const chunk of chunks) await writer.write(chunk);
    await writer.close();
  })();
  const [compressed] = await Promise.all([new Response(stream.readable).bytes(), written]);
  return compressed;
}

const compressJson = (format: "gzip" | "deflate", body: unknown) =>
  compress(format, [new TextEncoder().encode(JSON.stringify(body))]);

function post(env: Env, call: string, body: BodyInit, encoding: string, authorization = basic(SECRET)) {
  return callWorker(
    new Request(`http://bridge/v1/${call}`, {
      method: "POST",
      body,
      headers: { Authorization: authorization, "Content-Type": "application/json", "Content-Encoding": encoding },
    }),
    env,
  );
}

const expectedCall = (veroToken: string) => ({
  method: "POST",
  path: "/api/v2/events/track",
  body: {
    auth_token: veroToken,
    identity: { id: "u-1" },
    event_name: "Signed Up",
    data: { plan: "pro" },
    extras: { created_at: 1388534400, source: "segment" },
  },
});

/** 100 MB of zeros, gzipped to about 100 KB. */
const bomb = () => {
  const zeros = new Uint8Array(1024 * 1024);
  return compress(
    "gzip",
    Array.from({ length: 100 }, () => zeros),
  );
};

/** Gzipped zeros without end, made as they are read, counting the compressed bytes the Worker pulled. */
function endlessBomb() {
  const zeros = new Uint8Array(64 * 1024);
  const source = new ReadableStream<Uint8Array>(
    { pull: (controller) => controller.enqueue(zeros) },
    { highWaterMark: 0 },
  );
  const pulled = { bytes: 0 };
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      pulled.bytes += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
  return { stream: source.pipeThrough(new CompressionStream("gzip")).pipeThrough(counter), pulled };
}

describe("Content-Encoding on /v1/*", () => {
  for (const format of ["gzip", "deflate"] as const) {
    it(`delivers a ${format} body to Vero as if it were sent plain`, async () => {
      const { env, veroToken } = await isolatedEnv();
      const response = await post(env, "track", await compressJson(format, track), format);
      expect(response.status, await response.text()).toBe(200);
      expect(await vero.calls(veroToken)).toMatchObject([expectedCall(veroToken)]);
    });
  }

  it("undoes a list of encodings in the reverse of the order they were applied", async () => {
    const { env, veroToken } = await isolatedEnv();
    const twice = await compress("gzip", [await compressJson("deflate", { batch: [{ type: "track", ...track }] })]);
    const response = await post(env, "batch", twice, "deflate, gzip");
    expect(response.status, await response.text()).toBe(200);
    expect(await vero.calls(veroToken)).toMatchObject([expectedCall(veroToken)]);
  });

  it("answers Segment's 400 for 100 MB of zeros gzipped to 100 KB, naming the 500 KB limit", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = await expectJsonError(await post(env, "batch", await bomb(), "gzip"), 400);
    expect(body.error.code).toBe("payload_too_large");
    expect(body.error.message).toBe(
      `request body is over ${TRACKING_API_LIMITS.batchBytes} bytes (500 KB), Segment's limit for this path`,
    );
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("answers Segment's 400 for an endless gzip stream, having stopped reading it", async () => {
    const { env, veroToken } = await isolatedEnv();
    const { stream, pulled } = endlessBomb();
    await expectJsonError(await post(env, "batch", stream, "gzip"), 400);
    // The limit on the bytes as sent would stop it at 1 MiB of gzip (about 1 GB of zeros); the
    // limit on the decoded bytes stops it within a few times 1 MiB of zeros (a few KB of gzip).
    expect(pulled.bytes).toBeLessThan(MAX_BODY_BYTES / 10);
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("authenticates before reading: a bomb without credentials is a 401", async () => {
    const { env, veroToken } = await isolatedEnv();
    await expectJsonError(await post(env, "batch", await bomb(), "gzip", basic("wrong")), 401);
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("answers 415 naming an encoding it cannot undo", async () => {
    const { env, veroToken } = await isolatedEnv();
    const body = await expectJsonError(await post(env, "track", JSON.stringify(track), "br"), 415);
    expect(body.error).toEqual({
      status: 415,
      code: "unsupported_encoding",
      message: "Content-Encoding br is not supported; send the body plain, gzip or deflate",
    });
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("answers 415 to a Content-Encoding list of more than 2 codings, before chaining a decoder per coding", async () => {
    const { env, veroToken } = await isolatedEnv();
    const header = Array.from({ length: 10_000 }, () => "gzip").join(",");
    const body = await expectJsonError(await post(env, "track", await compressJson("gzip", track), header), 415);
    expect(body.error).toEqual({
      status: 415,
      code: "unsupported_encoding",
      message: "Content-Encoding lists 10000 codings; at most 2 are undone",
    });
    expect(await vero.calls(veroToken)).toEqual([]);
  });

  it("answers 400 for a body that says gzip but is not", async () => {
    const { env, veroToken } = await isolatedEnv();
    const gzip = await compressJson("gzip", track);
    const corrupt = gzip.slice();
    corrupt.fill(0xff, 10, 30);
    for (const body of [JSON.stringify(track), corrupt, gzip.slice(0, gzip.length - 8)]) {
      const error = await expectJsonError(await post(env, "track", body, "gzip"), 400);
      expect(error.error.code).toBe("invalid_encoding");
      expect(error.error.message).toBe("the body is not valid gzip data");
    }
    expect(await vero.calls(veroToken)).toEqual([]);
  });
});
