/**
 * The latency panel, beside the flow: each direction's p50/p95/p99 from the
 * bridge's receipt to the upstream's acceptance, over 24 hours and 7 days.
 */
import type { LatencySummary } from "../delivery/latency.ts";
import type { Direction } from "../delivery/ledger.ts";
import { formatMs } from "./alerts/conditions.ts";
import { DIRECTION_LABEL, DIRECTIONS, RANGES } from "./flow.tsx";

export type LatencyByRange = Record<(typeof RANGES)[number]["key"], Record<Direction, LatencySummary>>;

const FIELDS = ["count", "p50", "p95", "p99"] as const;

function cell(summary: LatencySummary, field: (typeof FIELDS)[number]): string | number {
  if (field === "count") return summary.count;
  const ms = summary[`${field}Ms`];
  return ms === null ? "–" : formatMs(ms);
}

export function LatencyPanel(props: { latency: LatencyByRange; latencySeconds: number }) {
  return (
    <>
      <p>
        From receipt to the upstream's acceptance. Alerts above {props.latencySeconds} s of p95 over 15 minutes (
        <code>ALERT_LATENCY_SECONDS</code>).
      </p>
      <table class="flow" id="latency-table">
        <thead>
          <tr>
            <th scope="col">Direction</th>
            <th scope="col">Range</th>
            {FIELDS.map((field) => (
              <th scope="col" class="num">
                {field === "count" ? "deliveries" : field}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {DIRECTIONS.flatMap((direction) =>
            RANGES.map((range) => (
              <tr data-direction={direction} data-range={range.key}>
                <th scope="row">{DIRECTION_LABEL[direction]}</th>
                <td>{range.title}</td>
                {FIELDS.map((field) => (
                  <td class="num" data-field={field}>
                    {cell(props.latency[range.key][direction], field)}
                  </td>
                ))}
              </tr>
            )),
          )}
        </tbody>
      </table>
    </>
  );
}
