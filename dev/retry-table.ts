/**
 * Prints the retry schedule as the Markdown table the durability docs
 * show, from the function the consumers call:
 * `node dev/retry-table.ts [horizonHours] [retentionHours]`.
 * test/node/retry-schedule.test.ts checks that the docs hold this table.
 */
import { pathToFileURL } from "node:url";
import {
  DEFAULT_RETRY_POLICY,
  formatDuration,
  type RetryPolicy,
  scheduleTable,
} from "../src/delivery/retry-schedule.ts";

export function retryTableMarkdown(policy: RetryPolicy = DEFAULT_RETRY_POLICY): string {
  const rows = scheduleTable(policy);
  const lines = ["| Attempt failed | Next try after | Since first enqueued |", "| ---: | ---: | ---: |"];
  // The hour-capped middle is the same row again and again; it is shown once with its range.
  let index = 0;
  while (index < rows.length) {
    const row = rows[index];
    if (!row) break;
    let last = index;
    while (rows[last + 1]?.delaySeconds === row.delaySeconds) last++;
    const end = rows[last] ?? row;
    lines.push(
      last - index >= 2
        ? `| ${row.attempt}–${end.attempt} | ${formatDuration(row.delaySeconds)} each | ${formatDuration(row.elapsedSeconds)} – ${formatDuration(end.elapsedSeconds)} |`
        : `| ${row.attempt} | ${formatDuration(row.delaySeconds)} | ${formatDuration(row.elapsedSeconds)} |`,
    );
    if (last - index < 2) {
      index++;
      continue;
    }
    index = last + 1;
  }
  const lastRow = rows.at(-1);
  lines.push(`| ${(lastRow?.attempt ?? 0) + 1} | dead letter | ${formatDuration(lastRow?.elapsedSeconds ?? 0)} |`);
  return lines.join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [horizon, retention] = process.argv.slice(2).map(Number);
  console.log(
    retryTableMarkdown({
      ...DEFAULT_RETRY_POLICY,
      ...(horizon ? { horizonSeconds: horizon * 3600 } : {}),
      ...(retention ? { retentionSeconds: retention * 3600 } : {}),
    }),
  );
}
