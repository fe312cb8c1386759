/**
 * Outbound delivery at scale, black box: many users' track events in through
 * `/v1/batch` to the bridge under wrangler dev (wrangler.toml as shipped:
 * the routes hand events to the mailboxes), out at the Vero stand-in, where every event must arrive once and
 * each user's in the order sent. No timing is asserted: each test waits,
 * within a generous bound, for the stand-in to hold every event.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { sendUserEvents, userIds } from "../../bench/lib/user-events.ts";
import { DEV_SECRETS } from "../../dev/dev-settings.ts";
import { StandInClient } from "../../dev/stand-ins/client.ts";
import { awaitEvents, type DeliveryCheck } from "../../dev/stand-ins/vero-events.ts";
import { bridgeWithTenants, type TenantBridge } from "./tenant-bridge.ts";

const vero = new StandInClient(inject("veroOrigin"));
const run = Date.now().toString(36);
// Retries a second apart, doubling: valid whether or not 0 is.
const FAST_RETRIES = { QUEUE_RETRY_BASE_SECONDS: "1" };
const STARTUP_MS = 120_000;
const STOP_MS = 30_000;

/** Everything well: each expected event once, none else, every user's in order. */
const clean = (expected: number): DeliveryCheck => ({
  expected,
  delivered: expected,
  missing: 0,
  duplicates: 0,
  unexpected: 0,
  outOfOrder: 0,
  usersOutOfOrder: 0,
});

describe("outbound drain of a backlog (wrangler dev, Vero answering after 150 ms)", () => {
  let tenant: TenantBridge | undefined;
  beforeAll(async () => {
    tenant = await bridgeWithTenants("drain-admin-token-for-the-end-to-end-tests", undefined, { vars: FAST_RETRIES });
  }, STARTUP_MS);
  afterAll(async () => {
    await tenant?.bridge.stop();
  }, STOP_MS);

  it("delivers 100 users x 8 events sent as /v1/batch rounds to Vero, each once and each user's in order", async () => {
    const { bridge, veroToken } = tenant as TenantBridge;
    await vero.fail(veroToken, { delayMs: 150 });
    const users = userIds(`${run}-drain`, 100);
    const requests = await sendUserEvents(bridge.url, DEV_SECRETS.SEGMENT_SHARED_SECRET, {
      users,
      eventsPerUser: 8,
      run: `${run}-drain`,
    });
    expect(requests).toBe(8);

    const { check } = await awaitEvents(vero, veroToken, { users, perUser: 8 }, { timeoutMs: 180_000 });
    expect(check).toEqual(clean(800));
  }, 240_000);
});

describe("outbound order under Vero faults (wrangler dev, 20 % of calls refused)", () => {
  let tenant: TenantBridge | undefined;
  beforeAll(async () => {
    tenant = await bridgeWithTenants("order-admin-token-for-the-end-to-end-tests", undefined, { vars: FAST_RETRIES });
  }, STARTUP_MS);
  afterAll(async () => {
    await tenant?.bridge.stop();
  }, STOP_MS);

  it("delivers 40 users x 6 events through 500s and 429s, each once and each user's in order", async () => {
    const { bridge, veroToken } = tenant as TenantBridge;
    await vero.fail(veroToken, { statuses: [500, 429], rate: 0.2, seed: 17 });
    const users = userIds(`${run}-order`, 40);
    await sendUserEvents(bridge.url, DEV_SECRETS.SEGMENT_SHARED_SECRET, {
      users,
      eventsPerUser: 6,
      run: `${run}-order`,
    });

    const { check, calls } = await awaitEvents(vero, veroToken, { users, perUser: 6 }, { timeoutMs: 300_000 });
    // The faults happened, both kinds, and were retried through.
    expect(new Set(calls.filter((call) => call.status >= 400).map((call) => call.status))).toEqual(new Set([500, 429]));
    expect(check).toEqual(clean(240));
  }, 360_000);
});
