/**
 * Posts one alert, within a bounded time. It never throws: a receiver that
 * fails or hangs must not stop the other alerts, nor the cron; the caller
 * keeps the condition's state so the next run sends it again.
 */
import { describeError, log } from "../../shared/log.ts";

/** Long enough for a chat service, short enough that a hanging receiver cannot hold the cron. */
export const ALERT_TIMEOUT_MS = 5_000;

export interface SendResult {
  delivered: boolean;
  /** The receiver's status; undefined when it did not answer in time or could not be reached. */
  status?: number;
}

export async function postAlert(
  webhook: { url: string; host: string },
  body: Record<string, unknown>,
  timeoutMs = ALERT_TIMEOUT_MS,
): Promise<SendResult> {
  try {
    const response = await fetch(webhook.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel();
    if (!response.ok) log("error", "alert receiver refused an alert", { host: webhook.host, status: response.status });
    return { delivered: response.ok, status: response.status };
  } catch (error) {
    // The URL is a secret (a Slack or Discord webhook's path is its credential): its host only.
    log("error", "alert receiver could not be reached", {
      host: webhook.host,
      error: describeError(error).replaceAll(webhook.url, webhook.host),
    });
    return { delivered: false };
  }
}
