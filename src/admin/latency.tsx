/**
 * The latency panel, beside the flow: each direction's p50/p95/p99 from the
 * bridge's receipt to the upstream's acceptance, over 24 hours and 7 days.
 */
import type { LatencySummary } from "../delivery/latency.ts";
import type { Direction } from "../delivery/ledger.ts";
import { formatMs } from "./alerts/conditions.ts";
import { DIRECTION_LABEL, DIRECTIONS, RANGES } from "./flow.tsx";

export type LatencyByRange = Record<(typeof RANGES)[number]["key"], Record<Direction, LatencySummary>>;

const Ms = (props: { ms: number | null }) => <>{props.ms === null ? "–" : formatMs(props.ms)}</>;

export function LatencyPanel(props: { latency: LatencyByRange; latencySeconds: number }) {
  return (
    <>
      <p>
        From the bridge's receipt of an event to the upstream's acceptance (Segment inbound, Vero outbound, its last
        call): retries, a slow upstream and a user's backlog all show here. Half of the deliveries took at most p50, 95%
        at most p95. The alert threshold is {props.latencySeconds} s (<code>ALERT_LATENCY_SECONDS</code>, p95 over 15
        minutes).
      </p>
      <table class="flow" id="latency-table">
        <thead>
          <tr>
            <th scope="col">Direction</th>
            <th scope="col">Range</th>
            <th scope="col" class="num">
              deliveries
            </th>
            <th scope="col" class="num">
              p50
            </th>
            <th scope="col" class="num">
              p95
            </th>
            <th scope="col" class="num">
              p99
            </th>
          </tr>
        </thead>
        <tbody>
          {DIRECTIONS.flatMap((direction) =>
            RANGES.map((range) => {
              const summary = props.latency[range.key][direction];
              return (
                <tr data-direction={direction} data-range={range.key}>
                  <th scope="row">{DIRECTION_LABEL[direction]}</th>
                  <td>{range.title}</td>
                  <td class="num" data-field="count">
                    {summary.count}
                  </td>
                  <td class="num" data-field="p50">
                    <Ms ms={summary.p50Ms} />
                  </td>
                  <td class="num" data-field="p95">
                    <Ms ms={summary.p95Ms} />
                  </td>
                  <td class="num" data-field="p99">
                    <Ms ms={summary.p99Ms} />
                  </td>
                </tr>
              );
            }),
          )}
        </tbody>
      </table>
    </>
  );
}
