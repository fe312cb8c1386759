/** A goal the bench judges, and how it is shown in the terminal and in bench/README.md. */
import type { Cell } from "./table.ts";

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
