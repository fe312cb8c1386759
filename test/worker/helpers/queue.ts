/** Runs the Worker's queue handler on a batch as the runtime would, and reports each message's fate. */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { vi } from "vitest";
import type { RecordedCall } from "../../../dev/stand-ins/client.ts";
import { type DeadLetter, getDeadLetter } from "../../../src/delivery/dead-letters.ts";
import worker from "../../../src/index.ts";
import type { VeroJob } from "../../../src/outbound/job.ts";
import type { VeroRequest } from "../../../src/outbound/map.ts";
import type { Env } from "../../../src/shared/env.ts";
import { mailboxesIdle, observingMailboxes } from "./env.ts";

export interface QueuedMessage {
  id: string;
  body: unknown;
  attempts?: number;
}

export interface BatchFate {
  acked: string[];
  /** Retried message ids with the delay asked for (getQueueResult does not report it, so `retry` is spied on). */
  retried: Record<string, number | undefined>;
}

/**
 * `deliver: false` returns once the mailboxes hold the jobs, without waiting for them to be sent: to
 * hand a user's jobs over in two invocations while the first ones still wait in the mailbox.
 */
export async function runBatch(
  queue: string,
  messages: QueuedMessage[],
  env: Env,
  { deliver = true }: { deliver?: boolean } = {},
): Promise<BatchFate> {
  const batch = createMessageBatch(
    queue,
    messages.map(({ id, body, attempts = 1 }) => ({ id, body, attempts, timestamp: new Date() })),
  );
  const delays: Record<string, number | undefined> = {};
  for (const message of batch.messages) {
    const original = message.retry.bind(message);
    vi.spyOn(message, "retry").mockImplementation((options) => {
      delays[message.id] = options?.delaySeconds;
      original(options);
    });
  }
  const ctx = createExecutionContext();
  const { observed, touched } = observingMailboxes(env);
  // The schedule's jitter drawn as 0: the longest delays, the ones the docs' table shows.
  const random = vi.spyOn(Math, "random").mockReturnValue(0);
  try {
    await worker.queue(batch, observed);
  } finally {
    random.mockRestore();
  }
  const result = await getQueueResult(batch, ctx);
  // What the mailboxes were given is delivered (what is due) before the test reads Vero's calls.
  if (deliver) await mailboxesIdle(env, touched);
  const retried: Record<string, number | undefined> = {};
  for (const { msgId } of result.retryMessages) retried[msgId] = delays[msgId];
  return { acked: [...result.explicitAcks].sort(), retried };
}

export const unique = (prefix: string) => `${prefix}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

/** A Vero queue job: `requests` for `user`, under a messageId of its own unless given. */
export function veroJob(user: string, requests: VeroRequest[], messageId = unique("m")): VeroJob {
  return { v: 2, kind: "vero", messageId, user, requests };
}

/** A Vero queue job of one events/track for `user`. */
export function trackJob(user: string, name: string, messageId = unique("m")): VeroJob {
  const body = { identity: { id: user }, event_name: name, data: {}, extras: { created_at: 1, source: "segment" } };
  return veroJob(user, [{ method: "POST", path: "/events/track", body }], messageId);
}

/** What Vero was asked, in order: "status /path who what" with the credential left out. */
export const summary = (calls: RecordedCall[]) =>
  calls.map((call) => {
    const body = call.body as { id?: string; identity?: { id?: string }; event_name?: string };
    return `${call.status} ${call.path.replace("/api/v2", "")} ${body.id ?? body.identity?.id}${body.event_name ? ` ${body.event_name}` : ""}`;
  });

/** The dead letter a mailbox wrote for the job `messageId`, if any (its id is the mailbox's, not the message's). */
export async function deadLetterFor(db: D1Database, messageId: string): Promise<DeadLetter | undefined> {
  const row = await db
    .prepare("SELECT id FROM dead_letters WHERE json_extract(body, '$.messageId') = ?1 ORDER BY failed_at DESC LIMIT 1")
    .bind(messageId)
    .first<{ id: string }>();
  return row ? getDeadLetter(db, row.id) : undefined;
}
