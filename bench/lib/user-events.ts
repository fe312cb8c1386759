/**
 * Segment track events for many users, sent to the bridge's `/v1/batch` the
 * way a Segment source sends them: one request per round carrying one event
 * of every user, or a few consecutive ones (`eventsPerRequest`), split when
 * over Segment's 500 KB per request, round after round, so that each user's
 * events have one order, the order sent.
 */
import { SEGMENT_MAX_BATCH_BYTES } from "../../dev/stand-ins/segment.ts";

export interface UserEventsLoad {
  /** The users' ids, in the order each round lists them. */
  users: string[];
  eventsPerUser: number;
  /** What every messageId starts with, so that runs never share one. */
  run: string;
  /** The pause between one round's last answer and the next round (a user whose events come apart). */
  gapMs?: number;
  /** Consecutive events of each user in one round (default 1), as a server library batches them. */
  eventsPerRequest?: number;
}

const perRound = (load: UserEventsLoad) => Math.max(1, load.eventsPerRequest ?? 1);

/** How many rounds the load takes. */
export const roundsOf = (load: UserEventsLoad): number => Math.ceil(load.eventsPerUser / perRound(load));

/** `count` users of one run. */
export const userIds = (run: string, count: number): string[] =>
  Array.from({ length: count }, (_, index) => `${run}-user-${index}`);

/** Event `seq` of `user`: a track whose data carries `seq`, which the Vero stand-in's record shows back. */
export function userEvent(run: string, user: string, seq: number): Record<string, unknown> {
  return {
    type: "track",
    messageId: `${run}-${user}-${seq}`,
    userId: user,
    event: "Drained event",
    properties: { seq },
    timestamp: new Date(1_700_000_000_000 + seq * 1000).toISOString(),
  };
}

/** Round `round`'s events as request bodies, each within Segment's limit per request. */
export function roundBodies(load: UserEventsLoad, round: number): string[] {
  const first = round * perRound(load);
  const seqs = Array.from({ length: Math.min(perRound(load), load.eventsPerUser - first) }, (_, i) => first + i);
  const wrapper = Buffer.byteLength('{"batch":[]}');
  const bodies: string[] = [];
  let batch: string[] = [];
  let bytes = wrapper;
  const flush = () => {
    if (batch.length > 0) bodies.push(`{"batch":[${batch.join(",")}]}`);
    batch = [];
    bytes = wrapper;
  };
  for (const user of load.users) {
    for (const seq of seqs) {
      const event = JSON.stringify(userEvent(load.run, user, seq));
      const added = Buffer.byteLength(event) + (batch.length > 0 ? 1 : 0);
      if (batch.length > 0 && bytes + added > SEGMENT_MAX_BATCH_BYTES) flush();
      bytes += Buffer.byteLength(event) + (batch.length > 0 ? 1 : 0);
      batch.push(event);
    }
  }
  flush();
  return bodies;
}

/**
 * Sends every round, one request at a time, with the bridge's shared secret
 * as Basic auth; throws on the first answer that is not 2xx. Returns the
 * number of requests sent.
 */
export async function sendUserEvents(origin: string, sharedSecret: string, load: UserEventsLoad): Promise<number> {
  const authorization = `Basic ${Buffer.from(`${sharedSecret}:`).toString("base64")}`;
  let requests = 0;
  for (let round = 0; round < roundsOf(load); round++) {
    if (round > 0 && load.gapMs) await new Promise((resolve) => setTimeout(resolve, load.gapMs));
    for (const body of roundBodies(load, round)) {
      const response = await fetch(`${origin}/v1/batch`, {
        method: "POST",
        headers: { authorization, "content-type": "application/json" },
        body,
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`/v1/batch answered ${response.status}: ${text.slice(0, 300)}`);
      requests++;
    }
  }
  return requests;
}
