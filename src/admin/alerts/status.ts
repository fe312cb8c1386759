/** What the console's alert panel shows: the conditions that hold now, and the last alerts sent. */
import type { Env } from "../../shared/env.ts";
import { describeError } from "../../shared/log.ts";
import { type AlertSettings, settingsFor } from "../../shared/settings.ts";
import { type Condition, ledgerCondition } from "./conditions.ts";
import { readConditions, recentAlerts, type SentAlert } from "./store.ts";

export interface AlertStatus {
  settings: AlertSettings;
  /** Undefined without the ledger: there is nothing to read the conditions from. */
  conditions?: Condition[];
  recent: SentAlert[];
}

export async function alertStatus(env: Env, now: Date): Promise<AlertStatus> {
  const settings = settingsFor(env).alerts;
  const db = env.LEDGER;
  if (!db) return { settings, recent: [] };
  try {
    const [{ conditions }, recent] = await Promise.all([readConditions(db, settings, now), recentAlerts(db)]);
    return { settings, conditions, recent };
  } catch (error) {
    return { settings, conditions: [ledgerCondition(describeError(error))], recent: [] };
  }
}
