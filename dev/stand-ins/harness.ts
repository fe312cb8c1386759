/**
 * What both stand-ins share: tenants (one credential each, so parallel tests
 * never see each other's calls), a record of every call, failure switches,
 * and the `/__control` API that tests and the sandbox drive over HTTP.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { FailurePlan, InFlight, RecordedCall } from "./types.ts";

export type { FailurePlan, InFlight, RecordedCall } from "./types.ts";

/** What a service's rules make of one request. */
export interface Verdict {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** The tenant whose credential the request carried, when it carried a known one. */
  tenant?: string;
  /** The payload parsed, when it parsed. */
  parsed?: unknown;
}

export interface ServiceRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  raw: Buffer;
}

export interface StandInOptions {
  service: "segment" | "vero" | "alerts";
  /** Applies the real service's rules; `knows(key)` says whether a credential belongs to a tenant. */
  handle: (request: ServiceRequest, knows: (key: string) => boolean) => Verdict;
  /** Credentials that exist from the start (the sandbox's fixed development keys). */
  tenants?: readonly string[];
  /** Called for every call, accepted or not (the sandbox prints them). */
  onCall?: (call: RecordedCall) => void;
  /** Bodies larger than this are refused before the service's rules run. */
  maxBodyBytes?: number;
}

export interface StandIn {
  /** Origin, e.g. http://127.0.0.1:34567 */
  url: string;
  server: Server;
  close(): Promise<void>;
}

interface Tenant {
  calls: RecordedCall[];
  /** Calls received and not yet answered, and the most there were at once since the calls were last cleared. */
  inFlight: InFlight;
  failure?: FailurePlan & { used: number; passed: number; dropped: number; rng: () => number };
}

/** mulberry32: a tiny seeded PRNG so "fail 30%" is repeatable. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function startStandIn(options: StandInOptions, port = 0): Promise<StandIn> {
  const tenants = new Map<string, Tenant>();
  const unknownCalls: RecordedCall[] = [];
  const fresh = (): Tenant => ({ calls: [], inFlight: { now: 0, max: 0 } });
  for (const key of options.tenants ?? []) tenants.set(key, fresh());
  const maxBodyBytes = options.maxBodyBytes ?? 4 * 1024 * 1024;

  const knows = (key: string) => tenants.has(key);

  async function control(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const parts = path.split("/").filter(Boolean); // ["__control", "tenants", key, action]
    const raw = (await readBody(req, 1024 * 1024)) ?? Buffer.alloc(0);
    const body = raw.length > 0 ? (JSON.parse(raw.toString("utf8")) as Record<string, unknown>) : {};
    if (parts[1] === "tenants" && parts.length === 2 && req.method === "POST") {
      const key = typeof body.key === "string" ? body.key : `${options.service}_${randomBytes(9).toString("hex")}`;
      if (!tenants.has(key)) tenants.set(key, fresh());
      return send(res, 201, { key });
    }
    if (parts[1] === "unknown" && req.method === "GET") return send(res, 200, { calls: unknownCalls });
    const key = parts[2] ? decodeURIComponent(parts[2]) : "";
    const tenant = tenants.get(key);
    if (parts[1] !== "tenants" || !tenant) return send(res, 404, { error: `no tenant ${key}` });
    if (parts[3] === "calls" && req.method === "GET") return send(res, 200, { calls: tenant.calls });
    if (parts[3] === "in-flight" && req.method === "GET") return send(res, 200, tenant.inFlight);
    if (parts[3] === "calls" && req.method === "DELETE") {
      tenant.calls = [];
      tenant.inFlight.max = tenant.inFlight.now;
      return send(res, 200, { ok: true });
    }
    if (parts[3] === "failure" && req.method === "PUT") {
      const plan = body as FailurePlan;
      tenant.failure = { ...plan, used: 0, passed: 0, dropped: 0, rng: seeded(plan.seed ?? 1) };
      return send(res, 200, { ok: true });
    }
    if (parts[3] === "failure" && req.method === "DELETE") {
      tenant.failure = undefined;
      return send(res, 200, { ok: true });
    }
    return send(res, 404, { error: `no control route ${req.method} ${path}` });
  }

  /** Decides whether the tenant's failure plan fails this call, and counts it. */
  function injectedFailure(tenant: Tenant): { status: number; retryAfter?: number } | undefined {
    const plan = tenant.failure;
    if (!plan?.status && !plan?.statuses?.length) return undefined;
    if (plan.after !== undefined && plan.passed < plan.after) {
      plan.passed += 1;
      return undefined;
    }
    const pick = (): number => {
      const choices = plan.statuses ?? [];
      return choices.length > 0
        ? (choices[Math.floor(plan.rng() * choices.length)] as number)
        : (plan.status as number);
    };
    if (plan.times !== undefined) {
      if (plan.used >= plan.times) return undefined;
      plan.used += 1;
      return { status: pick(), retryAfter: plan.retryAfter };
    }
    if (plan.rate !== undefined && plan.rng() >= plan.rate) return undefined;
    return { status: pick(), retryAfter: plan.retryAfter };
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://stand-in").pathname;
    if (path.startsWith("/__control/")) return control(req, res, path);

    const raw = await readBody(req, maxBodyBytes);
    const request: ServiceRequest = {
      method: req.method ?? "GET",
      path,
      headers: req.headers,
      raw: raw ?? Buffer.alloc(0),
    };
    const verdict: Verdict =
      raw === undefined
        ? { status: 413, body: { message: `request body over ${maxBodyBytes} bytes` } }
        : options.handle(request, knows);

    const tenant = verdict.tenant ? tenants.get(verdict.tenant) : undefined;
    if (tenant) {
      tenant.inFlight.now += 1;
      tenant.inFlight.max = Math.max(tenant.inFlight.max, tenant.inFlight.now);
    }
    try {
      await answer(res, request, verdict, tenant);
    } finally {
      if (tenant) tenant.inFlight.now -= 1;
    }
  }

  /** Holds the answer back, applies the failure plan, records the call and answers it. */
  async function answer(res: ServerResponse, request: ServiceRequest, judged: Verdict, tenant?: Tenant): Promise<void> {
    let verdict = judged;
    if (tenant?.failure?.delayMs) await sleep(tenant.failure.delayMs);
    const failure = tenant && verdict.status < 400 ? injectedFailure(tenant) : undefined;
    if (failure) {
      verdict = {
        ...verdict,
        status: failure.status,
        body: { message: `stand-in failure injected (${failure.status})` },
        headers: failure.retryAfter !== undefined ? { "retry-after": String(failure.retryAfter) } : {},
      };
    }

    const plan = tenant?.failure;
    const dropped = plan?.drop !== undefined && plan.dropped < plan.drop;
    if (plan && dropped) plan.dropped += 1;
    const call: RecordedCall = {
      service: options.service,
      method: request.method,
      path: request.path,
      status: dropped ? 0 : verdict.status,
      body: verdict.parsed ?? request.raw.toString("utf8"),
      response: verdict.body,
      at: Date.now(),
    };
    (tenant ? tenant.calls : unknownCalls).push(call);
    options.onCall?.(call);
    if (dropped) res.destroy();
    // A client that gave up (timeout) has closed the socket; writing would throw.
    else if (!res.destroyed) send(res, verdict.status, verdict.body, verdict.headers);
  }

  const server = createServer((req, res) => {
    serve(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) send(res, 500, { message: `stand-in crashed: ${String(error)}` });
    });
  });
  // Keep-alive sockets from the Worker must not hold `close()` open forever.
  server.keepAliveTimeout = 1000;
  // A taken port rejects (EADDRINUSE) rather than crashing the process: the sandbox then takes a free one.
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** Parses a JSON body, or says why not. */
export function parseJson(raw: Buffer): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    return { ok: true, value: JSON.parse(raw.toString("utf8")) };
  } catch (error) {
    return { ok: false, message: `invalid JSON: ${(error as Error).message}` };
  }
}

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
