/**
 * DESTINATION_FILTERS through the routes, and VERO_WEBHOOK_TYPES_DROPPED on the
 * webhook: what a filter holds back is answered as accepted, never reaches the
 * stand-in, is counted as `filtered` under the filter's title, and an invalid
 * filter is named by /health, /health/ready and the refused route.
 */
import { describe, expect, it } from "vitest";
import { readCounters } from "../../../src/delivery/ledger.ts";
import type { Env } from "../../../src/shared/env.ts";
import { forgetReadiness } from "../../../src/shared/health.ts";
import clicked from "../../fixtures/vero/clicked.json";
import sent from "../../fixtures/vero/sent.json";
import {
  baseEnv,
  callWorker,
  expectJsonError,
  isolatedEnv,
  postSegment,
  postWebhook,
  segment,
  vero,
} from "../helpers/env.ts";

const filters = (title: string) => [
  { title: `${title}: no page views`, if: 'type = "page"', actions: [{ type: "DROP" }], enabled: true },
  {
    title: `${title}: no phone numbers`,
    if: 'type = "identify" or type = "track"',
    actions: [{ type: "DROP_PROPERTIES", fields: { traits: ["phone"], properties: ["phone"] } }],
    enabled: true,
  },
  {
    title: `${title}: a tenth of the clicks`,
    if: 'match(event, "* Clicked")',
    actions: [{ type: "SAMPLE", percent: 0.1, path: "" }],
    enabled: true,
  },
];

/** This test's counters: rows whose name starts with its own title. */
async function countsFor(title: string) {
  const ledger = baseEnv.LEDGER as D1Database;
  const rows = await readCounters(ledger, { since: new Date(Date.now() - 3_600_000) });
  return rows
    .filter((row) => row.name.startsWith(title))
    .map(({ direction, name, outcome, count }) => ({ direction, name, outcome, count }));
}

async function veroCalls(key: string) {
  return (await vero.calls(key)).map((call) => ({ path: call.path.replace(/^\/api\/v2/, ""), body: call.body }));
}

describe("Destination Filters on the outbound routes", () => {
  it("drops, samples and edits before mapping: Vero gets only what passes, Segment hears every event accepted", async () => {
    const { env, veroToken } = await isolatedEnv(
      { DESTINATION_FILTERS: JSON.stringify(filters("route")) },
      { ledger: true },
    );
    const response = await postSegment(env, [
      { type: "page", messageId: "f-page", userId: "u-1", properties: { url: "/" } },
      { type: "identify", messageId: "f-identify", userId: "u-1", traits: { email: "jane@example.com", phone: "+1" } },
      // Its messageId hashes to 0.90, outside the sampled tenth.
      { type: "track", messageId: "f-click-2", userId: "u-1", event: "Button Clicked" },
    ]);
    expect(response.status).toBe(202);
    expect(((await response.json()) as { results: unknown[] }).results).toEqual([
      {
        messageId: "f-page",
        index: 0,
        outcome: "filtered",
        filter: "route: no page views",
        reason: 'destination filter "route: no page views" (drop)',
      },
      { messageId: "f-identify", index: 1, outcome: "queued" },
      {
        messageId: "f-click-2",
        index: 2,
        outcome: "filtered",
        filter: "route: a tenth of the clicks",
        reason: 'destination filter "route: a tenth of the clicks" (sampled out)',
      },
    ]);
    expect(await veroCalls(veroToken)).toEqual([
      {
        path: "/users/track",
        body: {
          auth_token: veroToken,
          id: "u-1",
          email: "jane@example.com",
          data: { email: "jane@example.com", id: "u-1" },
        },
      },
    ]);
    expect(await countsFor("route:")).toEqual([
      { direction: "outbound", name: "route: a tenth of the clicks", outcome: "filtered", count: 1 },
      { direction: "outbound", name: "route: no page views", outcome: "filtered", count: 1 },
    ]);
  });

  it("answers 200 when every event is filtered, and decides a re-sent messageId's sample the same way", async () => {
    const { env, veroToken } = await isolatedEnv({ DESTINATION_FILTERS: JSON.stringify(filters("resend")) });
    const clicks = Array.from({ length: 40 }, (_, i) => ({
      type: "track",
      messageId: `resend-${i}`,
      userId: `u-${i}`,
      event: "Link Clicked",
    }));
    const outcomes = async () => {
      const response = await postSegment(env, clicks);
      expect([200, 202]).toContain(response.status);
      return ((await response.json()) as { results: { outcome: string }[] }).results.map((result) => result.outcome);
    };
    const first = await outcomes();
    expect(await outcomes()).toEqual(first);
    const kept = first.filter((outcome) => outcome === "queued").length;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(40);
    // Each kept event reached Vero once: the second request's were recognised by the mailboxes' ledger.
    expect((await veroCalls(veroToken)).length).toBe(kept);

    const pageOnly = await postSegment(env, { type: "page", messageId: "p-1", userId: "u-1" });
    expect(pageOnly.status).toBe(200);
  });

  it("refuses outbound with 503 naming an invalid filter, and /health and /health/ready name it too", async () => {
    const broken = [
      { title: "Typo", if: 'event = "x" andd type = "track"', actions: [{ type: "DROP" }], enabled: true },
    ];
    const env: Env = { ...baseEnv, DESTINATION_FILTERS: JSON.stringify(broken) };
    const message = 'DESTINATION_FILTERS filter 1 ("Typo"): if unexpected "andd" at column 13';

    const refused = await expectJsonError(await postSegment(env, { type: "track", userId: "u", event: "x" }), 503);
    expect(refused.error).toMatchObject({ code: "not_configured", details: { invalid: [message] } });

    const health = (await (await callWorker(new Request("http://bridge/health"), env)).json()) as {
      outbound: boolean;
      problems: string[];
    };
    expect(health).toMatchObject({ outbound: false, problems: [`outbound is not configured: fix ${message}`] });

    forgetReadiness(); // The isolate's readiness cache must not answer for another test's settings.
    const ready = await expectJsonError(await callWorker(new Request("http://bridge/health/ready"), env), 503);
    expect((ready.error.details as { reasons: string[] }).reasons).toContain(
      `outbound is not configured: fix ${message}`,
    );
  });
});

describe("VERO_WEBHOOK_TYPES_DROPPED on the webhook", () => {
  it("answers 200 without forwarding the listed types, counts them as filtered, and forwards the others", async () => {
    const { env, writeKey } = await isolatedEnv({ VERO_WEBHOOK_TYPES_DROPPED: "sent,delivered" }, { ledger: true });
    const before = (await countsFor("Email Sent")).reduce((total, row) => total + row.count, 0);

    const dropped = await postWebhook(env, sent);
    expect(dropped.status).toBe(200);
    expect(await dropped.json()).toEqual({ ok: true, filtered: "VERO_WEBHOOK_TYPES_DROPPED lists sent" });
    expect(await segment.accepted(writeKey)).toEqual([]);
    const after = await countsFor("Email Sent");
    expect(after).toEqual([{ direction: "inbound", name: "Email Sent", outcome: "filtered", count: before + 1 }]);

    const forwarded = await postWebhook(env, clicked);
    expect(forwarded.status).toBe(200);
    expect((await segment.accepted(writeKey)).length).toBe(1);
  });
});
