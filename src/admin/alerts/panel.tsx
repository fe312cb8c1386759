/** The console's alert panel, at the top of `/admin`: what holds now, where alerts go, and what was sent. */
import type { AlertStatus } from "./status.ts";

const KINDS = { alert: "alert", repeat: "still", resolved: "resolved" } as const;

export function AlertsPanel(props: { status: AlertStatus }) {
  const { settings, conditions, recent } = props.status;
  return (
    <section class="panel" id="alerts">
      <h2>Alerts</h2>
      {settings.webhook ? (
        <p id="alerts-on">
          Alerts are on: checked every 5 minutes and posted to <code>{settings.webhook.host}</code> (format{" "}
          <code>{settings.format}</code>); a condition that persists is sent again every {settings.repeatMinutes}{" "}
          minutes.
        </p>
      ) : (
        <p class="warning" id="alerts-off">
          Alerts are off: nobody is told of the conditions below. Set the secret <code>ALERT_WEBHOOK_URL</code> (a
          Slack, Discord or PagerDuty webhook; see docs/operations.md) to be told.
        </p>
      )}
      {settings.invalid.length > 0 && (
        <p class="error" id="alerts-invalid">
          {settings.invalid.join("; ")}
        </p>
      )}
      <h3>Now</h3>
      {conditions === undefined ? (
        <p id="alerts-no-ledger">Without the ledger (LEDGER) there is nothing to check.</p>
      ) : conditions.length === 0 ? (
        <p class="notice" id="alerts-clear">
          Nothing to alert on: no dead letters, no direction failing above {Math.round(settings.failureRate * 100)}%
          over 15 minutes, no delivery stalled.
        </p>
      ) : (
        <ul id="alert-conditions">
          {conditions.map((condition) => (
            <li data-condition={condition.key}>
              <span class="bad">{condition.summary}</span> — {condition.details.join("; ")} —{" "}
              <a href={condition.link}>show</a>
            </li>
          ))}
        </ul>
      )}
      <h3>Last alerts sent</h3>
      {recent.length === 0 ? (
        <p id="alerts-none-sent">None yet.</p>
      ) : (
        <table id="alerts-sent">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Condition</th>
              <th scope="col">Kind</th>
              <th scope="col">Summary</th>
              <th scope="col">Receiver</th>
            </tr>
          </thead>
          <tbody>
            {recent.map((alert) => (
              <tr data-condition={alert.condition}>
                <td>{alert.sentAt}</td>
                <td>{alert.condition}</td>
                <td>{KINDS[alert.kind]}</td>
                <td>{alert.summary}</td>
                <td>
                  {alert.delivered ? (
                    <span class="ok">delivered</span>
                  ) : (
                    <span class="bad">
                      {alert.status === null ? "not reached" : `refused (${alert.status})`}; sent again next run
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
