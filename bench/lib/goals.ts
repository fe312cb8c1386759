/** A goal the bench judges, and how it is shown in the terminal and in bench/README.md. */
import { readFile, writeFile } from "node:fs/promises";
import { type Cell, renderMarkdownTable } from "./table.ts";

export interface Goal {
  goal: string;
  target: string;
  measured: string;
  /** null: not measured. */
  met: boolean | null;
  note?: string;
}

export const GOAL_HEADER = ["goal", "target", "measured", "verdict", "why"];

export const goalCells = (g: Goal): Cell[] => [
  g.goal,
  g.target,
  g.measured,
  g.met === null ? "not measured" : g.met ? "met" : "MISSED",
  g.note ?? "",
];

/**
 * Rewrites the section between `<!-- name:start -->` and `<!-- name:end -->` of `readmePath` into `target`
 * (the same file, or a smoke run's copy): the run line, the goals, then the point's table. A README without
 * the markers is left alone.
 */
export async function writeGoalSection(
  readmePath: string,
  target: string,
  name: string,
  header: string,
  goals: readonly Goal[],
  table: { title: string; header: string[]; rows: Cell[][] },
): Promise<void> {
  const [start, end] = [`<!-- ${name}:start -->`, `<!-- ${name}:end -->`];
  const section = [
    start,
    "",
    header,
    "",
    renderMarkdownTable(GOAL_HEADER, goals.map(goalCells)),
    "",
    `#### ${table.title}`,
    "",
    renderMarkdownTable(table.header, table.rows),
    "",
    end,
  ].join("\n");
  const readme = await readFile(readmePath, "utf8");
  if (!readme.includes(start) || !readme.includes(end)) return;
  await writeFile(
    target,
    readme.slice(0, readme.indexOf(start)) + section + readme.slice(readme.indexOf(end) + end.length),
  );
}
