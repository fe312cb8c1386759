/**
 * When a condition is sent: once when it starts, again while it persists
 * past the repeat interval, and "resolved" once when it clears. A pure
 * function of the last state and what holds now.
 */
import type { Condition, ConditionKey } from "./conditions.ts";

export interface ConditionState {
  condition: ConditionKey;
  active: boolean;
  /** ISO: when it last started or cleared. */
  since: string;
  lastSentAt?: string;
  /** Dead letters: the newest failure already alerted on. */
  mark?: string;
}

export type AlertKind = "alert" | "repeat" | "resolved";

export interface Transition {
  /** What to send, if anything; the state moves to `next` only once it is delivered. */
  send?: AlertKind;
  next: ConditionState;
}

export function transition(
  key: ConditionKey,
  previous: ConditionState | undefined,
  current: Condition | undefined,
  now: Date,
  repeatMs: number,
): Transition | undefined {
  const at = now.toISOString();
  if (current && !previous?.active) {
    if (!current.fresh) return undefined;
    return { send: "alert", next: { condition: key, active: true, since: at, lastSentAt: at, mark: current.mark } };
  }
  if (current && previous) {
    const last = previous.lastSentAt ? Date.parse(previous.lastSentAt) : 0;
    if (!current.fresh || now.getTime() - last < repeatMs) return undefined;
    return { send: "repeat", next: { ...previous, lastSentAt: at, mark: current.mark ?? previous.mark } };
  }
  if (!current && previous?.active) {
    return { send: "resolved", next: { ...previous, active: false, since: at, lastSentAt: at } };
  }
  return undefined;
}
