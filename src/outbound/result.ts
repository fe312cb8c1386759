/** What the route answers for each event, and the unit of work it delivers or enqueues. */
import type { VeroRequest } from "./map.ts";

export type EventOutcome = "delivered" | "queued" | "skipped" | "filtered" | "invalid" | "failed";

export interface EventResult {
  messageId: string | null;
  /** Position in the request, for events without a messageId. */
  index: number;
  outcome: EventOutcome;
  /** Why an event was skipped or filtered. */
  reason?: string;
  /** The title of the destination filter that dropped or sampled the event out. */
  filter?: string;
  /** What is wrong with an invalid event, or what Vero answered. */
  error?: string;
  /** For failed events: whether a retry of the request may succeed. */
  retryable?: boolean;
}

/**
 * How logs, dead letters and the ledger name an event: its messageId, or
 * its position (`#3`) when it has none, which the ledger knows to mean
 * nothing across requests (`isLedgerKey`).
 */
export const eventName = (result: Pick<EventResult, "messageId" | "index">): string =>
  result.messageId ?? `#${result.index}`;

/** `user` orders the event's job among the same user's in queue mode; `editedBy`, the filters that removed properties. */
export type RoutedEvent = { result: EventResult; requests: VeroRequest[]; user: string; editedBy?: string[] };
