/**
 * The Vero webhooks the inbound tests send, and the exact Segment message
 * each must become. Shared by the mapping tests (what mapVeroWebhook
 * returns) and the route tests (what the Segment stand-in receives).
 */
import { expect } from "vitest";
import { VERSION } from "../../../src/shared/version.ts";
import bounced from "../../fixtures/vero/bounced.json";
import bouncedSoft from "../../fixtures/vero/bounced_soft.json";
import clicked from "../../fixtures/vero/clicked.json";
import clickedLink from "../../fixtures/vero/clicked_link.json";
import complained from "../../fixtures/vero/complained.json";
import converted from "../../fixtures/vero/converted.json";
import delivered from "../../fixtures/vero/delivered.json";
import failed from "../../fixtures/vero/failed.json";
import opened from "../../fixtures/vero/opened.json";
import resubscribed from "../../fixtures/vero/resubscribed.json";
import sent from "../../fixtures/vero/sent.json";
import unsubscribed from "../../fixtures/vero/unsubscribed.json";
import unsubscribedCampaign from "../../fixtures/vero/unsubscribed_campaign.json";
import userCreated from "../../fixtures/vero/user_created.json";
import userUpdated from "../../fixtures/vero/user_updated.json";
import userUpdatedNoType from "../../fixtures/vero/user_updated_no_type.json";

export const MESSAGE_ID = /^vero-[0-9a-f]{64}$/;

/** 1435016238, the time in Vero's documented samples. */
const SAMPLE_TIME = "2015-06-22T23:37:18.000Z";

const integration = { name: "vero-segment-bridge", version: VERSION };
const loop = { integrations: { Vero: false } };
const contextFor = (email: string, userAgent?: string) => ({
  integration,
  traits: { email },
  ...(userAgent === undefined ? {} : { userAgent }),
});

/** The campaign of Vero's documented samples, as Segment properties. */
const orderConfirmation = {
  email_subject: "Your order is being processed!",
  campaign_id: "987",
  campaign_name: "Order confirmation",
  campaign_type: "transactional",
  campaign_variation: "Variation A",
  campaign_permalink: "http://app.getvero.com/view/1/341d64944577ac1f70f560e37db54a25",
  campaign_trigger_event: "purchased item",
};

export interface InboundCase {
  /** The behaviour, as the test names it. */
  name: string;
  payload: unknown;
  /** The message, given the timestamp to expect when the webhook carries none. */
  expected: (receivedAt: unknown) => Record<string, unknown>;
}

export const TRACK_CASES: InboundCase[] = [
  {
    name: "sent becomes Email Sent, with Vero 2's campaign group, channel and sent_to",
    payload: sent,
    expected: () => ({
      type: "track",
      event: "Email Sent",
      userId: "123",
      properties: {
        ...orderConfirmation,
        email_id: "20190730123456.1.1B72E094173067F0F@veromail.com",
        campaign_group: "Order confirmation - Email 6",
        channel: "email",
        sent_to: "steve@getvero.com",
      },
      timestamp: SAMPLE_TIME,
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "delivered becomes Email Delivered, the top-level message_id as email_id",
    payload: delivered,
    expected: () => ({
      type: "track",
      event: "Email Delivered",
      userId: "123",
      properties: { ...orderConfirmation, email_id: "20190730123456.1.1B72E094173067F0F@veromail.com" },
      timestamp: SAMPLE_TIME,
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "opened becomes Email Opened, with a string user id, a string campaign id and the user agent",
    payload: opened,
    expected: () => ({
      type: "track",
      event: "Email Opened",
      userId: "c0ffee-42",
      properties: {
        email_subject: "What's new in June",
        campaign_id: "5521",
        campaign_name: "June newsletter",
        campaign_type: "newsletter",
        campaign_variation: "Variation B",
        campaign_permalink: "http://app.getvero.com/view/1/9f2c1e7a",
      },
      timestamp: SAMPLE_TIME,
      context: contextFor(
        "ana@example.com",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
      ),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "clicked (Vero's sample) becomes Email Link Clicked, with the user agent",
    payload: clicked,
    expected: () => ({
      type: "track",
      event: "Email Link Clicked",
      userId: "123",
      properties: orderConfirmation,
      timestamp: SAMPLE_TIME,
      context: contextFor("steve@getvero.com", "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "clicked with the link becomes Email Link Clicked with link_url",
    payload: clickedLink,
    expected: () => ({
      type: "track",
      event: "Email Link Clicked",
      userId: "123",
      properties: {
        ...orderConfirmation,
        email_id: "20240601100000.1.AB12CD34EF56@veromail.com",
        link_url: "https://shop.example.com/orders/1001?utm_source=vero",
      },
      timestamp: "2024-06-01T10:00:00.000Z",
      context: contextFor(
        "steve@getvero.com",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
      ),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "bounced (Vero's sample) becomes Email Bounced with bounce_type",
    payload: bounced,
    expected: () => ({
      type: "track",
      event: "Email Bounced",
      userId: "123",
      properties: { ...orderConfirmation, bounce_type: "hard" },
      timestamp: SAMPLE_TIME,
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "a soft bounce with code and message, its time as a numeric string, becomes Email Bounced",
    payload: bouncedSoft,
    expected: () => ({
      type: "track",
      event: "Email Bounced",
      userId: "77",
      properties: {
        email_subject: "You left something behind",
        campaign_id: "4410",
        campaign_name: "Abandoned cart",
        campaign_type: "behavioral",
        campaign_trigger_event: "added to cart",
        bounce_type: "soft",
        bounce_code: "452",
        bounce_message: "4.2.2 The email account that you tried to reach is over quota",
      },
      timestamp: "2024-06-01T10:00:00.000Z",
      context: contextFor("full.inbox@example.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "unsubscribed without a campaign (Vero's sample) becomes Email Unsubscribed with no properties",
    payload: unsubscribed,
    expected: () => ({
      type: "track",
      event: "Email Unsubscribed",
      userId: "123",
      properties: {},
      timestamp: SAMPLE_TIME,
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "unsubscribed whose campaign uses campaign_title, email_subject, variation_name and message_id",
    payload: unsubscribedCampaign,
    expected: () => ({
      type: "track",
      event: "Email Unsubscribed",
      userId: "9001",
      properties: {
        email_id: "20240601100000.7.77AA88BB99CC@veromail.com",
        email_subject: "Your week in review",
        campaign_id: "3187",
        campaign_name: "Weekly digest",
        campaign_type: "newsletter",
        campaign_variation: "Short subject",
      },
      timestamp: "2024-06-01T10:00:00.000Z",
      context: contextFor("leaving@example.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "complained becomes Email Marked as Spam",
    payload: complained,
    expected: () => ({
      type: "track",
      event: "Email Marked as Spam",
      userId: "123",
      properties: {
        email_id: "20190730123456.1.1B72E094173067F0F@veromail.com",
        email_subject: "What's new in June",
        campaign_id: "987",
        campaign_name: "June newsletter",
        campaign_type: "newsletter",
        campaign_variation: "Variation A",
      },
      timestamp: SAMPLE_TIME,
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "failed becomes Email Failed",
    payload: failed,
    expected: () => ({
      type: "track",
      event: "Email Failed",
      userId: "123",
      properties: orderConfirmation,
      timestamp: SAMPLE_TIME,
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "converted becomes Email Converted, with the triggering event, sender_ip and comma-separated tags",
    payload: converted,
    expected: () => ({
      type: "track",
      event: "Email Converted",
      userId: "123",
      properties: {
        email_id: "20240601110000.3.CAFEBABE0001@veromail.com",
        email_subject: "20% off, this week only",
        campaign_id: "987",
        campaign_name: "Spring sale",
        campaign_type: "behavioral",
        campaign_variation: "Variation A",
        campaign_permalink: "http://app.getvero.com/view/1/0a1b2c3d",
        campaign_trigger_event: "viewed product",
        campaign_tags: ["vip", "spring-sale", "repeat-buyer"],
        campaign_group: "Spring sale - Email 2",
        channel: "email",
        event_name: "purchased item",
        event_triggered_at: "2024-06-01T10:59:50.000Z",
        sent_to: "steve@getvero.com",
        sender_ip: "198.51.100.23",
      },
      timestamp: "2024-06-01T11:00:00.000Z",
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "resubscribed by a user without an id becomes Email Resubscribed with the email as anonymousId",
    payload: resubscribed,
    expected: () => ({
      type: "track",
      event: "Email Resubscribed",
      anonymousId: "no-id@example.com",
      properties: {},
      timestamp: SAMPLE_TIME,
      context: contextFor("no-id@example.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
];

export const IDENTIFY_CASES: InboundCase[] = [
  {
    name: "user_created becomes identify with the user's attributes as traits",
    payload: userCreated,
    expected: (receivedAt) => ({
      type: "identify",
      userId: "123",
      traits: { firstname: "Steve", company: "Vero", role: "Bot", email: "steve@getvero.com" },
      timestamp: receivedAt,
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "user_updated becomes identify with the changes, _tags as tags",
    payload: userUpdated,
    expected: (receivedAt) => ({
      type: "identify",
      userId: "123",
      traits: {
        email: "steve@getvero.com",
        tags: { add: ["active-customer"], remove: ["unactive-180-days"] },
      },
      timestamp: receivedAt,
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
  {
    name: "a webhook with changes but no type is a user update, and becomes identify",
    payload: userUpdatedNoType,
    expected: (receivedAt) => ({
      type: "identify",
      userId: "123",
      traits: {
        email: "steve@getvero.com",
        plan: "pro",
        tags: { add: ["trial-converted"], remove: [] },
      },
      timestamp: receivedAt,
      context: contextFor("steve@getvero.com"),
      ...loop,
      messageId: expect.stringMatching(MESSAGE_ID),
    }),
  },
];

export const ALL_CASES = [...TRACK_CASES, ...IDENTIFY_CASES];
