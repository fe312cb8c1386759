/**
 * The flow panel: pure functions of the ledger's hourly counters, rendered
 * on the server as SVG and tables (no script in the page).
 */
import type { CounterOutcome, CounterRow, Direction } from "../delivery/ledger.ts";

export const OUTCOMES: readonly CounterOutcome[] = ["delivered", "retried", "dead_lettered", "refused", "filtered"];
export const DIRECTIONS: readonly Direction[] = ["inbound", "outbound"];

export const DIRECTION_LABEL: Record<Direction, string> = {
  inbound: "Inbound: Vero → Segment",
  outbound: "Outbound: Segment → Vero",
};
export const OUTCOME_LABEL: Record<CounterOutcome, string> = {
  delivered: "delivered",
  retried: "retried",
  dead_lettered: "dead-lettered",
  refused: "refused",
  filtered: "filtered",
};
const OUTCOME_COLOR: Record<CounterOutcome, string> = {
  delivered: "#2f855a",
  retried: "#b7791f",
  dead_lettered: "#c53030",
  refused: "#718096",
  filtered: "#5a67d8",
};

export type Tally = Record<CounterOutcome, number>;
export interface Bucket {
  /** ISO start of the bucket. */
  start: string;
  tally: Tally;
}
export interface NameFlow {
  name: string;
  tally: Tally;
  total: number;
}

const HOUR_MS = 3_600_000;
const emptyTally = (): Tally => ({ delivered: 0, retried: 0, dead_lettered: 0, refused: 0, filtered: 0 });
const sum = (tally: Tally) => OUTCOMES.reduce((total, outcome) => total + tally[outcome], 0);

/** The rows of one direction whose hour is in [since, until). */
export function rowsIn(rows: readonly CounterRow[], direction: Direction, since: Date, until: Date): CounterRow[] {
  const from = since.getTime();
  const to = until.getTime();
  return rows.filter((row) => {
    const at = Date.parse(row.hour);
    return row.direction === direction && at >= from && at < to;
  });
}

export function totalOf(rows: readonly CounterRow[]): Tally {
  const tally = emptyTally();
  for (const row of rows) tally[row.outcome] += row.count;
  return tally;
}

/** `count` buckets of `bucketHours` each, ending at `until` (exclusive), oldest first; hours without rows count 0. */
export function bucketsOf(rows: readonly CounterRow[], until: Date, count: number, bucketHours: number): Bucket[] {
  const width = bucketHours * HOUR_MS;
  const first = until.getTime() - count * width;
  const buckets = Array.from({ length: count }, (_, i) => ({
    start: new Date(first + i * width).toISOString(),
    tally: emptyTally(),
  }));
  for (const row of rows) {
    const index = Math.floor((Date.parse(row.hour) - first) / width);
    const bucket = buckets[index];
    if (bucket) bucket.tally[row.outcome] += row.count;
  }
  return buckets;
}

/** The names (event names or Vero calls) with the most traffic first; ties by name. */
export function topNames(rows: readonly CounterRow[], limit = 10): NameFlow[] {
  const byName = new Map<string, Tally>();
  for (const row of rows) {
    const tally = byName.get(row.name) ?? emptyTally();
    tally[row.outcome] += row.count;
    byName.set(row.name, tally);
  }
  return [...byName]
    .map(([name, tally]) => ({ name, tally, total: sum(tally) }))
    .sort((a, b) => b.total - a.total || a.name.localeCompare(b.name))
    .slice(0, limit);
}

const CHART = { width: 720, height: 170, left: 44, right: 8, top: 10, bottom: 24 };

function tickLabel(iso: string, bucketHours: number): string {
  // Hourly charts label the time of day, coarser ones the date (UTC, as the counters are).
  return bucketHours < 6 ? `${iso.slice(11, 16)}Z` : `${iso.slice(5, 10)} ${iso.slice(11, 13)}h`;
}

/** A stacked bar chart of outcomes per bucket, with a <title> per bar segment for its exact count. */
export function FlowChart(props: { buckets: Bucket[]; bucketHours: number; label: string }) {
  const { buckets, bucketHours, label } = props;
  const plotWidth = CHART.width - CHART.left - CHART.right;
  const plotHeight = CHART.height - CHART.top - CHART.bottom;
  const max = Math.max(1, ...buckets.map((bucket) => sum(bucket.tally)));
  const step = plotWidth / Math.max(1, buckets.length);
  const barWidth = Math.max(1, step * 0.8);
  const ticks = [0, Math.floor(buckets.length / 2), buckets.length - 1].filter(
    (index, i, all) => index >= 0 && all.indexOf(index) === i,
  );
  return (
    <svg
      class="chart"
      viewBox={`0 0 ${CHART.width} ${CHART.height}`}
      role="img"
      aria-label={label}
      xmlns="http://www.w3.org/2000/svg"
    >
      <title>{label}</title>
      <line
        x1={CHART.left}
        y1={CHART.top + plotHeight}
        x2={CHART.width - CHART.right}
        y2={CHART.top + plotHeight}
        stroke="#a0aec0"
      />
      <text x={CHART.left - 6} y={CHART.top + 10} text-anchor="end" font-size="11" fill="#4a5568">
        {max}
      </text>
      <text x={CHART.left - 6} y={CHART.top + plotHeight} text-anchor="end" font-size="11" fill="#4a5568">
        0
      </text>
      {buckets.map((bucket, i) => {
        let y = CHART.top + plotHeight;
        const x = CHART.left + i * step + (step - barWidth) / 2;
        return (
          <g data-start={bucket.start}>
            {OUTCOMES.filter((outcome) => bucket.tally[outcome] > 0).map((outcome) => {
              const height = (bucket.tally[outcome] / max) * plotHeight;
              y -= height;
              return (
                <rect
                  x={x.toFixed(1)}
                  y={y.toFixed(1)}
                  width={barWidth.toFixed(1)}
                  height={height.toFixed(1)}
                  fill={OUTCOME_COLOR[outcome]}
                  data-outcome={outcome}
                  data-count={bucket.tally[outcome]}
                >
                  <title>{`${bucket.start}: ${bucket.tally[outcome]} ${OUTCOME_LABEL[outcome]}`}</title>
                </rect>
              );
            })}
          </g>
        );
      })}
      {ticks.map((index) => (
        <text
          x={(CHART.left + index * step + step / 2).toFixed(1)}
          y={CHART.height - 6}
          text-anchor="middle"
          font-size="11"
          fill="#4a5568"
        >
          {tickLabel((buckets[index] as Bucket).start, bucketHours)}
        </text>
      ))}
    </svg>
  );
}

export function Legend() {
  return (
    <p class="legend">
      {OUTCOMES.map((outcome) => (
        <span>
          <svg width="10" height="10" aria-hidden="true" xmlns="http://www.w3.org/2000/svg">
            <rect width="10" height="10" fill={OUTCOME_COLOR[outcome]} />
          </svg>{" "}
          {OUTCOME_LABEL[outcome]}
        </span>
      ))}
    </p>
  );
}

/** One direction's totals and its top names, as a table whose first row is the direction's total. */
export function FlowTable(props: { rows: CounterRow[]; direction: Direction; caption: string }) {
  const total = totalOf(props.rows);
  const nameHeader = props.direction === "inbound" ? "Event" : "Vero call";
  return (
    <table class="flow" data-direction={props.direction}>
      <caption>{props.caption}</caption>
      <thead>
        <tr>
          <th scope="col">{nameHeader}</th>
          {OUTCOMES.map((outcome) => (
            <th scope="col" class="num">
              {OUTCOME_LABEL[outcome]}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        <tr class="total">
          <th scope="row">All</th>
          {OUTCOMES.map((outcome) => (
            <td class="num" data-outcome={outcome}>
              {total[outcome]}
            </td>
          ))}
        </tr>
        {topNames(props.rows).map((flow) => (
          <tr data-name={flow.name}>
            <th scope="row">{flow.name}</th>
            {OUTCOMES.map((outcome) => (
              <td class="num" data-outcome={outcome}>
                {flow.tally[outcome]}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export const RANGES = [
  { key: "day", title: "Last 24 hours", hours: 24, bucketHours: 1 },
  { key: "week", title: "Last 7 days", hours: 7 * 24, bucketHours: 6 },
] as const;

/** The whole flow panel for the counters of the last 7 days, up to `until` (the end of the current hour). */
export function FlowPanel(props: { rows: CounterRow[]; until: Date }) {
  const { rows, until } = props;
  return (
    <>
      <Legend />
      {RANGES.map((range) => {
        const since = new Date(until.getTime() - range.hours * HOUR_MS);
        return (
          <section class="range" id={`flow-${range.key}`}>
            <h3>{range.title}</h3>
            {DIRECTIONS.map((direction) => {
              const inRange = rowsIn(rows, direction, since, until);
              const label = `${DIRECTION_LABEL[direction]}, ${range.title.toLowerCase()}`;
              return (
                <div class="direction" data-direction={direction}>
                  <h4>{DIRECTION_LABEL[direction]}</h4>
                  <FlowChart
                    buckets={bucketsOf(inRange, until, range.hours / range.bucketHours, range.bucketHours)}
                    bucketHours={range.bucketHours}
                    label={label}
                  />
                  <FlowTable rows={inRange} direction={direction} caption={label} />
                </div>
              );
            })}
          </section>
        );
      })}
    </>
  );
}
