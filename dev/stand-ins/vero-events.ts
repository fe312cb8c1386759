/**
 * What a Vero tenant received, event by event: the `events/track` calls the
 * stand-in accepted, each named by its user and its place in that user's
 * sequence, checked for exactly once and, per user, for order.
 */
import type { StandInClient } from "./client.ts";
import type { RecordedCall } from "./types.ts";

/** One accepted event: `seq` is its place among its user's events, carried in the event's data. */
export interface SequencedEvent {
  user: string;
  seq: number;
}

export interface DeliveryCheck {
  /** Events expected: users × events per user. */
  expected: number;
  /** Distinct expected events Vero accepted. */
  delivered: number;
  missing: number;
  /** Accepted again after the first time. */
  duplicates: number;
  /** Accepted, but not among the expected (another user, or a seq out of range). */
  unexpected: number;
  /** Events that reached Vero after a later event of the same user (first arrivals only). */
  outOfOrder: number;
  usersOutOfOrder: number;
}

/** The accepted `events/track` calls, in the order the stand-in answered them, with the user's id and `data[seqField]`. */
export function acceptedEvents(calls: readonly RecordedCall[], seqField = "seq"): SequencedEvent[] {
  const events: SequencedEvent[] = [];
  for (const call of calls) {
    if (call.status !== 200 || !call.path.endsWith("/events/track")) continue;
    const body = call.body as { identity?: { id?: unknown }; data?: Record<string, unknown> };
    const seq = body.data?.[seqField];
    if (typeof seq === "number") events.push({ user: String(body.identity?.id), seq });
  }
  return events;
}

/** Checks `events` against each of `users` sending `perUser` events numbered 0 to perUser - 1. */
export function checkDelivery(
  events: readonly SequencedEvent[],
  users: readonly string[],
  perUser: number,
): DeliveryCheck {
  const known = new Set(users);
  const seen = new Map<string, Set<number>>();
  const latest = new Map<string, number>();
  const disordered = new Set<string>();
  let duplicates = 0;
  let unexpected = 0;
  let outOfOrder = 0;
  for (const { user, seq } of events) {
    if (!known.has(user) || !Number.isInteger(seq) || seq < 0 || seq >= perUser) {
      unexpected++;
      continue;
    }
    const mine = seen.get(user) ?? new Set<number>();
    seen.set(user, mine);
    if (mine.has(seq)) {
      duplicates++;
      continue;
    }
    mine.add(seq);
    if (seq < (latest.get(user) ?? -1)) {
      outOfOrder++;
      disordered.add(user);
    }
    latest.set(user, Math.max(seq, latest.get(user) ?? -1));
  }
  const delivered = [...seen.values()].reduce((sum, set) => sum + set.size, 0);
  const expected = users.length * perUser;
  return {
    expected,
    delivered,
    missing: expected - delivered,
    duplicates,
    unexpected,
    outOfOrder,
    usersOutOfOrder: disordered.size,
  };
}

export interface AwaitedEvents {
  calls: RecordedCall[];
  check: DeliveryCheck;
  /** Whether every expected event arrived within the time given. */
  complete: boolean;
}

/**
 * Polls the tenant's calls until Vero holds every expected event or
 * `timeoutMs` has passed; once all are there, until no call came for
 * `quietMs`, so a late repeat is counted too. The check is of the last poll.
 */
export async function awaitEvents(
  vero: StandInClient,
  token: string,
  expected: { users: readonly string[]; perUser: number },
  { timeoutMs, intervalMs = 1000, quietMs = 3000 }: { timeoutMs: number; intervalMs?: number; quietMs?: number },
): Promise<AwaitedEvents> {
  const checked = (calls: RecordedCall[]) => checkDelivery(acceptedEvents(calls), expected.users, expected.perUser);
  const deadline = Date.now() + timeoutMs;
  let calls = await vero.calls(token);
  while (checked(calls).missing > 0 && Date.now() < deadline) {
    await sleep(intervalMs);
    calls = await vero.calls(token);
  }
  const complete = checked(calls).missing === 0;
  for (let seen = -1; complete && calls.length !== seen; ) {
    seen = calls.length;
    await sleep(quietMs);
    calls = await vero.calls(token);
  }
  return { calls, check: checked(calls), complete };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
