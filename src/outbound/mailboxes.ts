/**
 * Handing jobs to the users' mailboxes: what the Vero queue's consumer,
 * the outbound routes without a queue, and a re-drive share. One call per
 * user, all users side by side; a user's jobs go in the order given.
 */
import { MAILBOX_UNBOUND } from "../shared/bindings.ts";
import type { Env } from "../shared/env.ts";
import { describeError } from "../shared/log.ts";
import { describeUnready, settingsFor, type VeroCredential } from "../shared/settings.ts";
import { isLedgerKey, type VeroJob } from "./job.ts";
import type { Accepted, Letter, Mailbox, MailboxConfig } from "./mailbox.ts";
import { mailboxName } from "./mailbox.ts";
import { lookupCalls } from "./vero-calls.ts";

/**
 * The most mailboxes one invocation calls: an invocation may make 1,000
 * subrequests to Cloudflare services (Durable Objects, D1, Queues) on every
 * plan; the rest is left for its own D1 writes.
 */
export const MAILBOXES_PER_INVOCATION = 990;

export { MAILBOX_UNBOUND };

/**
 * What a mailbox needs from the settings, or why they are not usable (a
 * missing binding or setting). The credential travels with each hand-over
 * and stays in the mailbox's memory; the config has none.
 */
export function mailboxConfigFor(
  env: Env,
): { ok: true; config: MailboxConfig; credential: VeroCredential } | { ok: false; reason: string } {
  if (!env.MAILBOX) return { ok: false, reason: MAILBOX_UNBOUND };
  const vero = settingsFor(env).consumers.vero;
  if (!vero.ready) return { ok: false, reason: describeUnready("the Vero consumer", vero) };
  const { veroApiUrl, veroAccount, veroCredential } = vero.settings;
  return {
    ok: true,
    credential: veroCredential,
    config: {
      account: veroAccount === undefined ? { veroApiUrl } : { veroApiUrl, veroAccount },
      trackConcurrency: vero.settings.trackConcurrency ?? 1,
      policy: settingsFor(env).retry.policy,
      retentionDays: settingsFor(env).retentionDays,
      logSampleRate: settingsFor(env).logSampleRate,
    },
  };
}

export function mailboxFor(env: Env, config: MailboxConfig, user: string): DurableObjectStub<Mailbox> {
  const namespace = env.MAILBOX as DurableObjectNamespace<Mailbox> | undefined;
  if (!namespace) throw new Error(MAILBOX_UNBOUND);
  return namespace.get(namespace.idFromName(mailboxName(config.account, user)));
}

export type Handed<T> = { items: T[]; user: string } & ({ ok: true; result: Accepted } | { ok: false; error: string });

/**
 * Groups `items` by user (keeping their order), gives each user's jobs to
 * the user's mailbox in one call, all users in parallel, and reports each
 * group's outcome: committed, or the error (nothing of the group committed).
 */
export async function handToMailboxes<T>(
  env: Env,
  { config, credential }: { config: MailboxConfig; credential: VeroCredential },
  items: readonly T[],
  letterOf: (item: T) => Letter,
  settleMs = 0,
): Promise<Handed<T>[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const user = letterOf(item).job.user;
    const group = groups.get(user) ?? [];
    group.push(item);
    groups.set(user, group);
  }
  return Promise.all(
    [...groups].map(async ([user, group]): Promise<Handed<T>> => {
      try {
        const result = await mailboxFor(env, config, user).accept(group.map(letterOf), config, credential, settleMs);
        return { items: group, user, ok: true, result };
      } catch (error) {
        return { items: group, user, ok: false, error: describeError(error) };
      }
    }),
  );
}

/** How many mailboxes `jobs` go to. */
export const usersOf = (jobs: readonly Pick<VeroJob, "user">[]): number => new Set(jobs.map((job) => job.user)).size;

/**
 * The calls the previous ledger (D1 `vero_calls`) recorded for jobs queued
 * before the mailboxes (`v: 1`), so that they resume after them: one query
 * (`d1Statements`), and none at all once no such job is left.
 */
export async function recordedBefore(
  env: Env,
  jobs: readonly VeroJob[],
): Promise<{ recorded: Map<string, string[]>; d1Statements: number }> {
  const ids = jobs.filter((job) => job.v === 1 && isLedgerKey(job.messageId)).map((job) => job.messageId);
  const recorded = new Map<string, string[]>();
  if (ids.length === 0 || !env.LEDGER) return { recorded, d1Statements: 0 };
  for (const pair of await lookupCalls(env.LEDGER, ids)) {
    const cut = pair.lastIndexOf("\n");
    const [messageId, call] = [pair.slice(0, cut), pair.slice(cut + 1)];
    recorded.set(messageId, [...(recorded.get(messageId) ?? []), call]);
  }
  return { recorded, d1Statements: 1 };
}
