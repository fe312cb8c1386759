/**
 * Handing jobs to the users' mailboxes: what the Vero queue's consumer,
 * the outbound routes without a queue, and a re-drive share. One call per
 * user, all users side by side; a user's jobs go in the order given.
 */
import { MAILBOX_UNBOUND } from "../shared/bindings.ts";
import type { Env } from "../shared/env.ts";
import { BridgeError } from "../shared/errors.ts";
import { describeError } from "../shared/log.ts";
import { describeUnready, settingsFor, type VeroCredential } from "../shared/settings.ts";
import type { VeroJob } from "./job.ts";
import type { Accepted, Letter, Mailbox, MailboxConfig } from "./mailbox.ts";
import { mailboxName } from "./mailbox.ts";
import { recordedBefore } from "./vero-calls.ts";

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
  const settings = settingsFor(env);
  const vero = settings.consumers.vero;
  if (!vero.ready) return { ok: false, reason: describeUnready("the Vero consumer", vero) };
  const { veroApiUrl, veroAccount, veroCredential } = vero.settings;
  return {
    ok: true,
    credential: veroCredential,
    config: {
      account: veroAccount === undefined ? { veroApiUrl } : { veroApiUrl, veroAccount },
      trackConcurrency: vero.settings.trackConcurrency ?? 1,
      policy: settings.retry.policy,
      retentionDays: settings.retentionDays,
      logSampleRate: settings.logSampleRate,
      reportEveryMs: settings.countsReportMs,
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

/** The mailboxes' answers summed over the groups they took: what a hand-over's log line reports. */
export function acceptedTotals(handed: readonly Handed<unknown>[]): Accepted {
  const total: Accepted = {
    accepted: 0,
    skipped: 0,
    delivered: 0,
    veroCalls: 0,
    alarmsSet: 0,
    doRowsRead: 0,
    doRowsWritten: 0,
  };
  for (const group of handed)
    if (group.ok) for (const key of Object.keys(total) as (keyof Accepted)[]) total[key] += group.result[key];
  return total;
}

/** How many mailboxes `jobs` go to. */
export const usersOf = (jobs: readonly Pick<VeroJob, "user">[]): number => new Set(jobs.map((job) => job.user)).size;

/**
 * Hands `items` to their users' mailboxes with the calls the previous
 * ledger (D1 `vero_calls`) recorded for jobs queued before the mailboxes, so
 * that those resume after them: what the Vero consumer, a re-drive and the
 * event tester share. When that ledger cannot be read nothing is handed
 * over (sending blind could repeat its calls): a 503, retried by the caller.
 */
export async function handJobsToMailboxes<T>(
  env: Env,
  ready: { config: MailboxConfig; credential: VeroCredential },
  items: readonly T[],
  jobOf: (item: T) => VeroJob,
  settleMs = 0,
): Promise<{ handed: Handed<T>[]; d1Statements: number }> {
  let before: Awaited<ReturnType<typeof recordedBefore>>;
  try {
    before = await recordedBefore(env.LEDGER, items.map(jobOf));
  } catch (error) {
    throw new BridgeError(
      503,
      "ledger_unavailable",
      `the previous ledger could not be read: ${describeError(error)}; retry later`,
    );
  }
  const handed = await handToMailboxes(
    env,
    ready,
    items,
    (item) => {
      const job = jobOf(item);
      return { job, recorded: before.recorded.get(job.messageId) };
    },
    settleMs,
  );
  return { handed, d1Statements: before.d1Statements };
}
