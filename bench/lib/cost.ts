/**
 * What a delivered event costs on Cloudflare: the billed units the bridge's
 * own log lines report (tallied over a bench point), and their price at the
 * published rates beyond each plan's included amount.
 */
import { deliveryWork, workerLogObject } from "./worker-log.ts";

/** Billed units summed over the Worker's log lines of one bench point. */
export interface WorkTally {
  /** Every JSON log line the Worker wrote (the bench runs it with LOG_SAMPLE_RATE=1, so none is left out). */
  logLines: number;
  /** Of those, the `info` ones: success lines, which production writes for LOG_SAMPLE_RATE of its events only. */
  infoLines: number;
  d1Statements: number;
  /** Durable Object requests, alarm invocations included (a `mailbox drain` or `counters flushed` line is one). */
  doRequests: number;
  /** Mailbox storage rows (the runtime's cursor counters, from the lines' doRowsWritten and doRowsRead). */
  rowsWritten: number;
  rowsRead: number;
  /** `vero batch` lines: one queue consumer invocation each. */
  consumerBatches: number;
  /** Queue messages the consumer read (a message retried on the queue is read again) and retried. */
  messagesRead: number;
  messagesRetried: number;
  /** Counts a mailbox sent to its counter shard (a `mailbox drain` line's own doRequests). */
  reports: number;
  /** Count rows the mailboxes' reports carried (`mailbox drain` lines' reportedRows): each is a row the shard upserts. */
  reportedRows: number;
  /** Count rows the counter shards wrote to D1 (`counters flushed` lines' rows), and their writes (the lines). */
  flushedRows: number;
  flushes: number;
  /** Vero calls the mailboxes made, as their lines say (in their runs, and within hand-overs). */
  veroCalls: number;
  /** Alarms the mailboxes set: each is kept in the object's storage, so it is counted in rowsWritten too. */
  alarmsSet: number;
  /** Lines and mailbox rows written, by the line's `msg`: where the log lines and the rows come from. */
  byMessage: Record<string, { lines: number; rowsWritten: number }>;
}

export const emptyTally = (): WorkTally => ({
  logLines: 0,
  infoLines: 0,
  d1Statements: 0,
  doRequests: 0,
  rowsWritten: 0,
  rowsRead: 0,
  consumerBatches: 0,
  messagesRead: 0,
  messagesRetried: 0,
  reports: 0,
  reportedRows: 0,
  flushedRows: 0,
  flushes: 0,
  veroCalls: 0,
  alarmsSet: 0,
  byMessage: {},
});

const numberOf = (value: Record<string, unknown>, field: string): number =>
  typeof value[field] === "number" ? (value[field] as number) : 0;

/** Adds what one line of the Worker's output reports to `tally`. */
export function tallyLine(tally: WorkTally, line: string): void {
  const value = workerLogObject(line);
  if (!value) return;
  tally.logLines++;
  if (value.level === "info") tally.infoLines++;
  const work = deliveryWork(line);
  tally.d1Statements += work?.d1Statements ?? 0;
  tally.doRequests += work?.doRequests ?? 0;
  tally.rowsWritten += work?.doRowsWritten ?? 0;
  tally.rowsRead += work?.doRowsRead ?? 0;
  const alarms = numberOf(value, "alarmsSet");
  tally.alarmsSet += alarms;
  tally.rowsWritten += alarms;
  const msg = value.msg as string;
  const mine = tally.byMessage[msg] ?? { lines: 0, rowsWritten: 0 };
  tally.byMessage[msg] = mine;
  mine.lines++;
  mine.rowsWritten += (work?.doRowsWritten ?? 0) + alarms;
  if (value.msg === "vero batch") {
    tally.consumerBatches++;
    tally.messagesRead += numberOf(value, "messages");
    tally.messagesRetried += numberOf(value, "retried");
  } else if (value.msg === "mailbox drain") {
    tally.reports += numberOf(value, "doRequests");
    tally.reportedRows += numberOf(value, "reportedRows");
    tally.veroCalls += numberOf(value, "veroCalls");
  } else if (value.msg === "outbound handed to mailboxes") {
    tally.veroCalls += numberOf(value, "veroCalls");
  } else if (value.msg === "counters flushed") {
    // The shard's alarm, which its line does not count as a request.
    tally.doRequests++;
    tally.flushedRows += numberOf(value, "rows");
    tally.flushes++;
  }
}

/** Billed units per delivered event, as priced below. */
export interface UnitsPerEvent {
  workersRequests: number;
  queueOperations: number;
  doRequests: number;
  doGbSeconds: number;
  doRowsWritten: number;
  doRowsRead: number;
  d1RowsWritten: number;
  logEvents: number;
}

/** A Durable Object is billed at 128 MB, whatever it uses. */
const DO_GB = 0.125;

/** How a point's Worker logs in production: its success lines' sample, and whether Cloudflare adds invocation logs. */
export interface Logging {
  /** LOG_SAMPLE_RATE as deployed: the share of `info` lines production writes. */
  logSampleRate: number;
  /** wrangler.toml's `invocation_logs`: one more log event per Worker and Durable Object invocation. */
  invocationLogs: boolean;
}

/**
 * Per delivered event, from a point's tally: `routeRequests` the bridge's
 * routes answered, `delivered` the events Vero accepted, `veroRoundTripMs`
 * what the Vero stand-in held each call back (a mailbox is active, so billed,
 * while it waits for Vero), and how production logs.
 */
export function unitsPerEvent(
  tally: WorkTally,
  {
    routeRequests,
    delivered,
    veroRoundTripMs,
    logging,
  }: { routeRequests: number; delivered: number; veroRoundTripMs: number; logging: Logging },
): UnitsPerEvent {
  const per = (value: number) => value / Math.max(1, delivered);
  const enqueued = tally.messagesRead - tally.messagesRetried;
  const workersRequests = routeRequests + tally.consumerBatches;
  return {
    workersRequests: per(workersRequests),
    // Written once, deleted once, read once per delivery attempt (a retry reads again).
    queueOperations: per(2 * enqueued + tally.messagesRead),
    doRequests: per(tally.doRequests),
    doGbSeconds: per(tally.veroCalls * (veroRoundTripMs / 1000) * DO_GB),
    // The shards' rows are not in their lines: each report upserts its rows and its source, each flushed row is
    // updated and deleted, and each flush was an alarm set (kept in storage).
    doRowsWritten: per(tally.rowsWritten + tally.reportedRows + tally.reports + 2 * tally.flushedRows + tally.flushes),
    doRowsRead: per(tally.rowsRead),
    d1RowsWritten: per(tally.flushedRows),
    logEvents: per(
      tally.logLines -
        tally.infoLines * (1 - logging.logSampleRate) +
        (logging.invocationLogs ? invocations(tally, routeRequests) : 0),
    ),
  };
}

/** Worker and Durable Object invocations: with `invocation_logs`, Workers Logs stores one log event for each. */
export const invocations = (tally: WorkTally, routeRequests: number): number =>
  routeRequests + tally.consumerBatches + tally.doRequests;

export interface Rate {
  label: string;
  /** Dollars per million units beyond the included amount. */
  perMillion: number;
  /** Units included each month on Workers Paid. */
  included: number;
}

/**
 * Workers Paid list prices and monthly inclusions: the Workers, Queues,
 * Durable Objects, D1 and Workers Logs pricing pages as docs/durability.md
 * dates them.
 */
export const PRICES_READ = "December 2026";
export const RATES: Record<keyof UnitsPerEvent, Rate> = {
  workersRequests: { label: "Workers requests", perMillion: 0.3, included: 10e6 },
  queueOperations: { label: "queue operations", perMillion: 0.4, included: 1e6 },
  doRequests: { label: "Durable Object requests", perMillion: 0.15, included: 1e6 },
  doGbSeconds: { label: "Durable Object duration (GB-s)", perMillion: 12.5, included: 400_000 },
  doRowsWritten: { label: "Durable Object rows written", perMillion: 1, included: 50e6 },
  doRowsRead: { label: "Durable Object rows read", perMillion: 0.001, included: 25e9 },
  d1RowsWritten: { label: "D1 rows written", perMillion: 1, included: 50e6 },
  logEvents: { label: "log events (lines and invocation logs)", perMillion: 0.6, included: 20e6 },
};

export interface MonthlyCost {
  eventsPerMonth: number;
  /** Dollars a month per component, beyond its included amount (the plan's $5 left out). */
  components: Record<keyof UnitsPerEvent, number>;
  total: number;
  perMillionEvents: number;
}

/** The month's bill for `eventsPerMonth` events at `units` each. */
export function monthlyCost(units: UnitsPerEvent, eventsPerMonth: number): MonthlyCost {
  const components = Object.fromEntries(
    (Object.keys(RATES) as (keyof UnitsPerEvent)[]).map((key) => {
      const { perMillion, included } = RATES[key];
      return [key, (Math.max(0, units[key] * eventsPerMonth - included) / 1e6) * perMillion];
    }),
  ) as Record<keyof UnitsPerEvent, number>;
  const total = Object.values(components).reduce((sum, value) => sum + value, 0);
  return { eventsPerMonth, components, total, perMillionEvents: total / (eventsPerMonth / 1e6) };
}

/** The components that weigh most, largest first, as "label $x" (per million events). */
export function largestComponents(cost: MonthlyCost, count = 3): string[] {
  const perMillion = cost.eventsPerMonth / 1e6;
  return (Object.entries(cost.components) as [keyof UnitsPerEvent, number][])
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, value]) => `${RATES[key].label} $${(value / perMillion).toFixed(2)}`);
}
