/**
 * One valid Segment event of every call type the bridge handles, for the
 * fuzz and log suites: the contract's fixtures plus the types they lack.
 */
import alias from "../../fixtures/segment/alias.json";
import group from "../../fixtures/segment/group.json";
import identify from "../../fixtures/segment/identify.json";
import identifyWithTags from "../../fixtures/segment/identify_with_tags.json";
import track from "../../fixtures/segment/track.json";
import unsubscribe from "../../fixtures/segment/unsubscribe.json";

export const SEGMENT_EVENTS: Record<string, Record<string, unknown>> = {
  identify,
  identifyWithTags,
  track,
  unsubscribe,
  resubscribe: { type: "track", messageId: "ex-resub-1", userId: "324LKJF", event: "Resubscribe" },
  page: {
    type: "page",
    messageId: "ex-page-1",
    userId: "324LKJF",
    name: "Pricing",
    properties: { url: "https://example.com/pricing" },
    context: { traits: { email: "page.viewer@example.com" } },
  },
  screen: { type: "screen", messageId: "ex-screen-1", userId: "324LKJF", name: "Home", properties: { tab: "feed" } },
  group,
  alias,
  delete: { type: "delete", messageId: "ex-delete-1", userId: "324LKJF" },
  tagsAddRemove: {
    type: "track",
    messageId: "ex-tags-1",
    userId: "324LKJF",
    event: "Upgraded",
    integrations: { Vero: { tags: { add: ["pro"], remove: ["trial"] } } },
  },
};

/** Events the bridge acknowledges without a call: the loop guard, and Vero switched off. */
export const SKIPPED_EVENTS: Record<string, unknown>[] = [
  {
    type: "track",
    messageId: "ex-loop-1",
    userId: "324LKJF",
    event: "Email Opened",
    context: { integration: { name: "vero-segment-bridge", version: "0.1.0" } },
  },
  { type: "identify", messageId: "ex-off-1", userId: "324LKJF", integrations: { Vero: false } },
];
