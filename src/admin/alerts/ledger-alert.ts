/**
 * The memory of the "ledger unreachable" alert, which cannot live in the
 * ledger it is about: a singleton Durable Object (binding LEDGER_ALERT), so
 * that whichever isolate runs the cron tells an outage once and resolves it
 * once. Without the binding an isolate remembers it alone, as a fallback.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../../shared/env.ts";
import { describeError, log } from "../../shared/log.ts";
import type { ConditionState } from "./transitions.ts";

const KEY = "ledger";

export class LedgerAlert extends DurableObject<Env> {
  async read(): Promise<ConditionState | null> {
    return (await this.ctx.storage.get<ConditionState>(KEY)) ?? null;
  }

  /** null forgets it. */
  async write(state: ConditionState | null): Promise<void> {
    if (state === null) await this.ctx.storage.delete(KEY);
    else await this.ctx.storage.put(KEY, state);
  }
}

/** The one object, or undefined without the binding. */
export function ledgerAlertStub(env: Env): DurableObjectStub<LedgerAlert> | undefined {
  const namespace = env.LEDGER_ALERT as DurableObjectNamespace<LedgerAlert> | undefined;
  return namespace?.get(namespace.idFromName("ledger-alert"));
}

// This isolate's copy: the state when the object is not bound or cannot be reached.
let isolateState: ConditionState | undefined;

/** For tests: forget what this isolate remembers, as a new isolate would. */
export function forgetLedgerState(): void {
  isolateState = undefined;
}

export async function readLedgerState(env: Env): Promise<ConditionState | undefined> {
  const stub = ledgerAlertStub(env);
  if (!stub) return isolateState;
  try {
    return (await stub.read()) ?? undefined;
  } catch (error) {
    log("warn", "ledger alert state unread", { error: describeError(error) });
    return isolateState;
  }
}

export async function writeLedgerState(env: Env, state: ConditionState): Promise<void> {
  isolateState = state;
  const stub = ledgerAlertStub(env);
  if (!stub) return;
  try {
    await stub.write(state);
  } catch (error) {
    log("warn", "ledger alert state unwritten", { error: describeError(error) });
  }
}
