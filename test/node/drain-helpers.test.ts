/** The outbound drain's pure pieces: what is sent, how a Vero record is checked, what a log line reports. */
import { describe, expect, it } from "vitest";
import type { CostPoint, CostPointName } from "../../bench/cost.ts";
import { costGoals, costTable } from "../../bench/cost-report.ts";
import type { Drain, DrainPoint } from "../../bench/drain.ts";
import { drainGoals } from "../../bench/drain-report.ts";
import {
  emptyTally,
  largestComponents,
  monthlyCost,
  tallyLine,
  unitsPerEvent,
  type WorkTally,
} from "../../bench/lib/cost.ts";
import { roundBodies, roundsOf, userEvent, userIds } from "../../bench/lib/user-events.ts";
import { deliveryWork } from "../../bench/lib/worker-log.ts";
import type { RecordedCall } from "../../dev/stand-ins/client.ts";
import { SEGMENT_MAX_BATCH_BYTES } from "../../dev/stand-ins/segment.ts";
import { acceptedEvents, checkDelivery } from "../../dev/stand-ins/vero-events.ts";

const call = (status: number, path: string, body: unknown): RecordedCall => ({
  service: "vero",
  method: "POST",
  path,
  status,
  body,
  response: {},
  at: 0,
});
const event = (user: string, seq: number) => ({ identity: { id: user }, event_name: "e", data: { seq } });

describe("acceptedEvents", () => {
  it("keeps the events/track calls Vero accepted, in the order recorded, with their user and seq", () => {
    const calls = [
      call(200, "/api/v2/events/track", event("a", 0)),
      call(500, "/api/v2/events/track", event("a", 1)),
      call(200, "/api/v2/users/track", { id: "a", data: { seq: 9 } }),
      call(200, "/api/v2/events/track", event("b", 0)),
      call(200, "/api/v2/events/track", event("a", 1)),
    ];
    expect(acceptedEvents(calls)).toEqual([
      { user: "a", seq: 0 },
      { user: "b", seq: 0 },
      { user: "a", seq: 1 },
    ]);
  });
});

describe("checkDelivery", () => {
  const seqs = (user: string, list: number[]) => list.map((seq) => ({ user, seq }));

  it("finds nothing wrong when every user's events arrived once, in order, interleaved with others'", () => {
    const events = [...seqs("a", [0]), ...seqs("b", [0, 1]), ...seqs("a", [1, 2]), ...seqs("b", [2])];
    expect(checkDelivery(events, ["a", "b"], 3)).toEqual({
      expected: 6,
      delivered: 6,
      missing: 0,
      duplicates: 0,
      unexpected: 0,
      outOfOrder: 0,
      usersOutOfOrder: 0,
    });
  });

  it("counts an event that arrived after a later one of its user as out of order, and its user once", () => {
    const check = checkDelivery([...seqs("a", [1, 0, 3, 2]), ...seqs("b", [0, 1, 2, 3])], ["a", "b"], 4);
    expect(check).toMatchObject({ delivered: 8, outOfOrder: 2, usersOutOfOrder: 1 });
  });

  it("counts repeats, missing and unexpected events apart, and judges order on first arrivals", () => {
    const events = [...seqs("a", [0, 1, 0, 1]), ...seqs("z", [0]), ...seqs("b", [5])];
    expect(checkDelivery(events, ["a", "b"], 2)).toMatchObject({
      delivered: 2,
      missing: 2,
      duplicates: 2,
      unexpected: 2,
      outOfOrder: 0,
    });
  });
});

describe("user events", () => {
  it("puts one event of every user in a round, in user order, each numbered by the round", () => {
    const users = userIds("r", 3);
    const bodies = roundBodies({ users, eventsPerUser: 2, run: "r" }, 1);
    expect(bodies).toHaveLength(1);
    const batch = (JSON.parse(bodies[0] as string) as { batch: Record<string, unknown>[] }).batch;
    expect(batch).toEqual(users.map((user) => userEvent("r", user, 1)));
    expect(batch.map((e) => e.properties)).toEqual([{ seq: 1 }, { seq: 1 }, { seq: 1 }]);
  });

  it("puts a user's consecutive events in one round with eventsPerRequest, the last round holding what is left", () => {
    const load = { users: ["hot"], eventsPerUser: 5, run: "r", eventsPerRequest: 3 };
    expect(roundsOf(load)).toBe(2);
    const seqs = [0, 1].map((round) =>
      roundBodies(load, round).flatMap((body) =>
        (JSON.parse(body) as { batch: { properties: { seq: number } }[] }).batch.map((e) => e.properties.seq),
      ),
    );
    expect(seqs).toEqual([
      [0, 1, 2],
      [3, 4],
    ]);
  });

  it("splits a round over requests that each stay within Segment's 500 KB, losing no user", () => {
    const users = userIds(`r-${"x".repeat(2000)}`, 200);
    const bodies = roundBodies({ users, eventsPerUser: 1, run: "r" }, 0);
    expect(bodies.length).toBeGreaterThan(1);
    for (const body of bodies) expect(Buffer.byteLength(body)).toBeLessThanOrEqual(SEGMENT_MAX_BATCH_BYTES);
    const sent = bodies.flatMap((body) => (JSON.parse(body) as { batch: { userId: string }[] }).batch);
    expect(sent.map((e) => e.userId)).toEqual(users);
  });
});

describe("deliveryWork", () => {
  it("reads d1Statements and doRequests from a Worker log line, wherever wrangler puts it", () => {
    const line = JSON.stringify({ level: "info", msg: "mailbox drained", d1Statements: 1, doRequests: 3 });
    expect(deliveryWork(line)).toEqual({ d1Statements: 1, doRequests: 3 });
    expect(deliveryWork(`[wrangler:info] ${line}`)).toEqual({ d1Statements: 1, doRequests: 3 });
  });

  it("counts the queue consumer's ledgerQueries as D1 statements when d1Statements is absent, and only then", () => {
    expect(deliveryWork(JSON.stringify({ msg: "vero batch", ledgerQueries: 2 }))).toEqual({
      d1Statements: 2,
      doRequests: undefined,
    });
    expect(deliveryWork(JSON.stringify({ msg: "x", ledgerQueries: 2, d1Statements: 5 }))?.d1Statements).toBe(5);
  });

  it("counts a mailbox drain line's alarm invocation as a Durable Object request, and reads the mailbox rows", () => {
    const line = JSON.stringify({
      msg: "mailbox drain",
      d1Statements: 0,
      doRequests: 1,
      doRowsWritten: 7,
      doRowsRead: 12,
    });
    expect(deliveryWork(line)).toEqual({ d1Statements: 0, doRequests: 2, doRowsWritten: 7, doRowsRead: 12 });
  });

  it("ignores lines that report neither, or do not parse", () => {
    expect(deliveryWork(JSON.stringify({ msg: "outbound request", events: 3 }))).toBeUndefined();
    expect(deliveryWork('{"msg":"vero batch","ledgerQueries":')).toBeUndefined();
    expect(deliveryWork('{"d1Statements":"2"}')).toBeUndefined();
  });
});

describe("the bench's cost of a delivered event", () => {
  const lines = [
    "[wrangler:info] POST /v1/batch 202 Accepted (12ms)",
    JSON.stringify({ msg: "vero batch", messages: 10, retried: 2, d1Statements: 0, doRequests: 3, doRowsWritten: 20 }),
    JSON.stringify({
      level: "info",
      msg: "mailbox drain",
      veroCalls: 8,
      d1Statements: 0,
      doRequests: 1,
      doRowsWritten: 30,
      doRowsRead: 40,
      alarmsSet: 1,
      reportedRows: 2,
    }),
    JSON.stringify({ level: "warn", msg: "counters flushed", rows: 3, d1Statements: 1, doRequests: 0 }),
    JSON.stringify({ level: "info", msg: "outbound request", events: 8 }),
  ];
  const tally = emptyTally();
  for (const line of lines) tallyLine(tally, line);

  it("counts every line the Worker wrote, each alarm as a request and a row written, and the consumer's reads and retries", () => {
    expect(tally).toEqual({
      logLines: 4,
      infoLines: 2,
      d1Statements: 1,
      // 3 hand-overs, the mailbox's alarm and its report, the shard's alarm
      doRequests: 6,
      rowsWritten: 51,
      rowsRead: 40,
      consumerBatches: 1,
      messagesRead: 10,
      messagesRetried: 2,
      reports: 1,
      reportedRows: 2,
      flushedRows: 3,
      flushes: 1,
      veroCalls: 8,
      alarmsSet: 1,
      byMessage: {
        "vero batch": { lines: 1, rowsWritten: 20 },
        "mailbox drain": { lines: 1, rowsWritten: 31 },
        "counters flushed": { lines: 1, rowsWritten: 0 },
        "outbound request": { lines: 1, rowsWritten: 0 },
      },
    });
  });

  it("prices queue operations as write, read and delete per message and a read per retry, and adds the shards' rows", () => {
    const logging = { logSampleRate: 0.01, invocationLogs: false };
    const units = unitsPerEvent(tally, { routeRequests: 2, delivered: 8, veroRoundTripMs: 150, logging });
    expect(units.queueOperations).toBe((2 * 8 + 10) / 8);
    expect(units.workersRequests).toBe(3 / 8);
    // The mailboxes' 51; the shard's: 2 report rows, its source, 3 rows updated and deleted, its alarm.
    expect(units.doRowsWritten).toBe((51 + 2 + 1 + 2 * 3 + 1) / 8);
    expect(units.d1RowsWritten).toBe(3 / 8);
    expect(units.doGbSeconds).toBeCloseTo(0.15 * 0.125);
  });

  it("prices the lines production writes: every warning, the sampled share of info lines, and an invocation log per invocation when on", () => {
    const at = (logging: { logSampleRate: number; invocationLogs: boolean }) =>
      unitsPerEvent(tally, { routeRequests: 2, delivered: 8, veroRoundTripMs: 150, logging }).logEvents;
    expect(at({ logSampleRate: 0.01, invocationLogs: false })).toBeCloseTo((2 + 2 * 0.01) / 8);
    expect(at({ logSampleRate: 1, invocationLogs: false })).toBe(4 / 8);
    // 2 route requests, 1 consumer batch, 6 Durable Object requests.
    expect(at({ logSampleRate: 1, invocationLogs: true })).toBe((4 + 2 + 1 + 6) / 8);
  });

  it("charges only what is beyond each inclusion, so a small month costs less per event than a large one", () => {
    const logging = { logSampleRate: 0.01, invocationLogs: true };
    const units = { ...unitsPerEvent(tally, { routeRequests: 8, delivered: 8, veroRoundTripMs: 150, logging }) };
    const billion = monthlyCost(units, 1e9);
    const tenMillion = monthlyCost(units, 1e7);
    expect(billion.components.queueOperations).toBeCloseTo(((units.queueOperations * 1e9 - 1e6) / 1e6) * 0.4);
    expect(billion.perMillionEvents).toBeCloseTo(billion.total / 1000);
    expect(tenMillion.perMillionEvents).toBeLessThan(billion.perMillionEvents);
    expect(monthlyCost(units, 1e5).components.doRowsWritten).toBe(0);
    expect(largestComponents(billion, 1)[0]).toMatch(/^Durable Object rows written \$\d/);
  });
});

describe("drain goals", () => {
  const point = (
    runtime: DrainPoint["runtime"],
    eventsPerSecond: number,
    mode: DrainPoint["mode"] = "direct",
  ): DrainPoint => ({
    users: 100,
    runtime,
    mode,
    eventsPerUser: 8,
    veroDelayMs: 150,
    requests: 8,
    sendMs: 800,
    drainMs: 2000,
    eventsPerSecond,
    serialLimit: 666.7,
    ratioToLimit: eventsPerSecond / 666.7,
    maxInFlight: 100,
    veroCalls: 800,
    check: {
      expected: 800,
      delivered: 800,
      missing: 0,
      duplicates: 0,
      unexpected: 0,
      outOfOrder: 0,
      usersOutOfOrder: 0,
    },
    complete: true,
    d1Statements: 4,
    doRequests: 900,
    d1Lines: 4,
    doLines: 100,
    d1PerEvent: 0.005,
    doPerEvent: 1.125,
    rowsWrittenPerEvent: 7,
    rowsReadPerEvent: 14,
  });
  const drain = (points: DrainPoint[]): Drain => ({
    options: {
      users: [100],
      defaultRuntime: [100],
      queued: [100],
      reference: [100],
      eventsPerUser: 8,
      veroDelayMs: 150,
      timeoutMs: 60_000,
    },
    points,
  });

  it("judges the lean runtime at half of users per round trip, and shows the defaults against the queue consumer unjudged", () => {
    const [lean, defaults] = drainGoals(drain([point("lean", 320), point("defaults", 160)]));
    expect(lean?.met).toBe(false);
    expect(lean?.target).toBe("≥ 0.5");
    expect(drainGoals(drain([point("lean", 340)]))[0]?.met).toBe(true);
    expect(defaults?.target).toBe("≥ 8x");
    expect(defaults?.measured).toMatch(/^5\.7x \(160 vs 28 events\/s/);
    expect(defaults?.met).toBeNull();
    expect(defaults?.note).toMatch(/not side by side/);
  });

  it("judges the defaults against the queue consumer run side by side when the run has it", () => {
    const [, defaults] = drainGoals(
      drain([point("lean", 340), point("defaults", 240), point("defaults", 25, "reference")]),
    );
    expect(defaults?.measured).toMatch(/^9\.6x \(240 vs 25 events\/s/);
    expect(defaults?.met).toBe(true);
    expect(defaults?.note).toMatch(/side by side in this run/);
    const [, slower] = drainGoals(
      drain([point("lean", 340), point("defaults", 150), point("defaults", 25, "reference")]),
    );
    expect(slower?.met).toBe(false);
  });

  it("judges the drain with the Vero queue (the operator's opt-in) apart, after the goals of wrangler.toml as shipped", () => {
    const rows = drainGoals(drain([point("lean", 300), point("lean", 500, "queue"), point("defaults", 400, "queue")]));
    expect(rows.map((row) => row.goal.endsWith("with the Vero queue"))).toEqual([false, false, false, true, true]);
    expect(rows[3]?.met).toBe(true);
    expect(rows[4]?.met).toBeNull();
    expect(rows[4]?.measured).toMatch(/^14\.3x/);
    expect(rows[4]?.met).toBeNull();
  });

  it("says when no point ran on wrangler dev's defaults", () => {
    const rows = drainGoals(drain([point("lean", 340)]));
    expect(rows).toHaveLength(3);
    expect(rows[1]?.measured).toBe("not measured");
  });
});

describe("cost goals", () => {
  const costPoint = (name: CostPointName, tallied: Partial<WorkTally>, delivered: number, eventsPerSecond = 1) => {
    const tally = { ...emptyTally(), ...tallied };
    const check = {
      expected: delivered,
      delivered,
      missing: 0,
      duplicates: 0,
      unexpected: 0,
      outOfOrder: name === "hotConcurrent" ? 7 : 0,
      usersOutOfOrder: 0,
    };
    return {
      name,
      users: 1,
      eventsPerUser: delivered,
      veroDelayMs: 150,
      routeRequests: 1,
      drainMs: 1000,
      eventsPerSecond,
      callsPerRoundTrip: eventsPerSecond / (1000 / 150),
      veroCalls: delivered,
      maxInFlight: 1,
      check,
      complete: true,
      tally,
      perEvent: unitsPerEvent(tally, {
        routeRequests: 1,
        delivered,
        veroRoundTripMs: 150,
        logging: { logSampleRate: 0.01, invocationLogs: true },
      }),
    } satisfies CostPoint;
  };
  const cheap = { messagesRead: 100, consumerBatches: 1, doRequests: 10, rowsWritten: 50, logLines: 1 };
  const dear = { ...cheap, rowsWritten: 1400 };

  it("judges each of sparse, burst and retry, with the Vero queue and without, at $3 per million at a billion a month, and names what weighs most", () => {
    const rows = costGoals({
      veroDelayMs: 150,
      points: [costPoint("sparse", dear, 100), costPoint("burst", cheap, 100), costPoint("retry", dear, 100)],
    });
    expect(rows.map((row) => row.met)).toEqual([false, true, false, null, null, null, null]);
    expect(rows[0]?.measured).toMatch(/^\$\d+\.\d\d \(14 DO rows written \(14 by the mailbox\)/);
    expect(rows[0]?.note).toMatch(/^most: Durable Object rows written \$13\.95/);
    expect(rows[3]?.measured).toBe("not measured");
  });

  it("judges the hot user in strict order at 0.8 of a call per round trip, with the opt-in's figure beside it unjudged", () => {
    const [hot] = costGoals({
      veroDelayMs: 150,
      points: [costPoint("hot", cheap, 200, 6.2), costPoint("hotConcurrent", cheap, 200, 21.6)],
    }).slice(6);
    expect(hot?.met).toBe(true);
    expect(hot?.measured).toBe("0.93 (6.2 of 6.7 events/s)");
    expect(hot?.note).toMatch(/VERO_TRACK_CONCURRENCY=4 \(no goal\): 3\.24.*7 out of order, which the setting allows/);
    expect(costGoals({ veroDelayMs: 150, points: [costPoint("hot", cheap, 200, 5)] })[6]?.met).toBe(false);
  });

  it("prints a row per point with its price at 10 million and 1 billion a month", () => {
    const table = costTable({ veroDelayMs: 150, points: [costPoint("burst", cheap, 100)] });
    expect(table.rows).toHaveLength(1);
    expect(table.header.slice(-2)).toEqual(["$/M at 10 M a month", "$/M at 1 B a month"]);
    expect(table.rows[0]?.at(-1)).toMatch(/^\$\d+\.\d\d$/);
  });
});
