/**
 * An event's Vero calls made at most once: what the queue consumer and the
 * inline routes share. The calls already recorded in the ledger for a whole
 * batch are read in one query before any call; those Vero accepts are
 * recorded, with the batch's counters, in one write after the last. Without
 * the LEDGER binding every call is made, as it is asked for.
 */

import {
  type CallRecord,
  Counters,
  callKey,
  isDone,
  isLedgerKey,
  lookupCalls,
  markDone,
  recordCallsStatement,
} from "../delivery/ledger.ts";
import { DeliveryError } from "../shared/errors.ts";
import type { VeroRequest } from "./map.ts";
import { sendToVero, type VeroTarget } from "./vero.ts";

/** The name a call is counted under, e.g. "POST /events/track". */
export const callName = (request: VeroRequest) => `${request.method} ${request.path}`;

export interface CallRun {
  /** How many of the calls are done (made now, or found in the ledger) before the first failure. */
  done: number;
  /** How many of those the ledger (or an earlier job of this batch) already held. */
  skipped: number;
  error?: DeliveryError;
  /** The call that failed. */
  failed?: VeroRequest;
}

export class CallLedger {
  readonly counters = new Counters();
  private readonly records: CallRecord[] = [];
  /** Round trips to D1 so far. */
  queries = 0;

  private constructor(
    readonly db: D1Database | undefined,
    private readonly done: Set<string>,
  ) {}

  /** Reads what the ledger holds of `messageIds` (one query), or nothing without a ledger. */
  static async open(db: D1Database | undefined, messageIds: Iterable<string>): Promise<CallLedger> {
    if (!db) return new CallLedger(undefined, new Set());
    const ids = [...messageIds].filter(isLedgerKey);
    const ledger = new CallLedger(db, ids.length > 0 ? await lookupCalls(db, ids) : new Set());
    if (ids.length > 0) ledger.queries++;
    return ledger;
  }

  /** Whether a failed job can resume from the ledger alone, so no continuation needs carrying. */
  get dedup(): boolean {
    return this.db !== undefined;
  }

  /**
   * Makes an event's calls in order, from `step` (a continuation's first
   * call), skipping the recorded ones, and stops at the first failure.
   * `alreadyDone` says whether a failure means the call was done before.
   */
  async run(
    target: VeroTarget,
    messageId: string,
    requests: readonly VeroRequest[],
    step = 0,
    alreadyDone: (request: VeroRequest, error: DeliveryError) => boolean = () => false,
  ): Promise<CallRun> {
    let skipped = 0;
    for (const [index, request] of requests.entries()) {
      const call = callKey(step + index, request.method, request.path);
      if (isDone(this.done, messageId, call)) {
        skipped++;
        continue;
      }
      try {
        // A `#<index>` stand-in names an event without a messageId, which the route did not sample either.
        const [status = 200] = await sendToVero(target, [request], isLedgerKey(messageId) ? messageId : null);
        this.counters.add("outbound", callName(request), "delivered");
        if (this.db && isLedgerKey(messageId)) {
          this.records.push({ messageId, call, status });
          // The same event twice in one batch or request: its second copy finds the calls done.
          markDone(this.done, messageId, call);
        }
      } catch (error) {
        // Anything but a DeliveryError is a bug: it escapes.
        if (!(error instanceof DeliveryError)) throw error;
        if (alreadyDone(request, error)) continue;
        return { done: index, skipped, error, failed: request };
      }
    }
    return { done: requests.length, skipped };
  }

  /** The statements recording the calls made and the counters; undefined entries when there is nothing to write. */
  statements(): (D1PreparedStatement | undefined)[] {
    if (!this.db) return [];
    return [
      this.records.length > 0 ? recordCallsStatement(this.db, this.records) : undefined,
      this.counters.statement(this.db),
    ];
  }
}
