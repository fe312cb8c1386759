/**
 * Drives a running stand-in over HTTP: works with plain `fetch`, so tests
 * inside workerd, Node-side tests, the sandbox and the benchmarks share it.
 */
import type { FailurePlan, InFlight, RecordedCall } from "./types.ts";

export type { FailurePlan, InFlight, RecordedCall } from "./types.ts";

export class StandInClient {
  readonly origin: string;

  constructor(origin: string) {
    this.origin = origin.replace(/\/+$/, "");
  }

  private async control<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.origin}/__control${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`stand-in control ${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as T;
  }

  /** A fresh credential whose calls no other test sees; or registers `key`. */
  async tenant(key?: string): Promise<string> {
    return (await this.control<{ key: string }>("POST", "/tenants", key === undefined ? {} : { key })).key;
  }

  /** Every call made with the tenant's credential, in arrival order, whatever was answered. */
  async calls(key: string): Promise<RecordedCall[]> {
    return (await this.control<{ calls: RecordedCall[] }>("GET", `/tenants/${encodeURIComponent(key)}/calls`)).calls;
  }

  /** Only the calls the stand-in accepted (2xx). */
  async accepted(key: string): Promise<RecordedCall[]> {
    return (await this.calls(key)).filter((call) => call.status >= 200 && call.status < 300);
  }

  /** Calls that carried no known credential. */
  async unknownCalls(): Promise<RecordedCall[]> {
    return (await this.control<{ calls: RecordedCall[] }>("GET", "/unknown")).calls;
  }

  /** The tenant's calls not yet answered, and the most at once since its calls were last cleared. */
  async inFlight(key: string): Promise<InFlight> {
    return this.control<InFlight>("GET", `/tenants/${encodeURIComponent(key)}/in-flight`);
  }

  /** Forgets the tenant's calls, and starts its most-in-flight record again from the calls open now. */
  async clear(key: string): Promise<void> {
    await this.control("DELETE", `/tenants/${encodeURIComponent(key)}/calls`);
  }

  async fail(key: string, plan: FailurePlan): Promise<void> {
    await this.control("PUT", `/tenants/${encodeURIComponent(key)}/failure`, plan);
  }

  async heal(key: string): Promise<void> {
    await this.control("DELETE", `/tenants/${encodeURIComponent(key)}/failure`);
  }

  /** Polls until `predicate` holds for the tenant's calls (for asynchronous delivery), or throws after `timeoutMs`. */
  async waitFor(
    key: string,
    predicate: (calls: RecordedCall[]) => boolean,
    { timeoutMs = 10_000, intervalMs = 50 } = {},
  ): Promise<RecordedCall[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const calls = await this.calls(key);
      if (predicate(calls)) return calls;
      if (Date.now() > deadline)
        throw new Error(`stand-in: condition not met within ${timeoutMs} ms (${calls.length} calls)`);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

/** Segment messages the stand-in accepted, batches flattened, each with its call type. */
export function segmentMessages(calls: readonly RecordedCall[]): Record<string, unknown>[] {
  const messages: Record<string, unknown>[] = [];
  for (const call of calls) {
    if (call.status < 200 || call.status >= 300) continue;
    const body = call.body as Record<string, unknown>;
    if (call.path === "/v1/batch") messages.push(...(body.batch as Record<string, unknown>[]));
    else messages.push({ type: call.path.slice("/v1/".length), ...body });
  }
  return messages;
}
