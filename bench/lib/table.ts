/** Plain-text tables for the terminal and for bench/README.md (Markdown). */

export type Cell = string | number;

function text(cell: Cell): string {
  if (typeof cell === "string") return cell;
  if (!Number.isFinite(cell)) return String(cell);
  return cell.toLocaleString("en-US", { maximumFractionDigits: 2 });
}

/** Columns padded to their widest cell. */
export function renderTable(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const cells = [header, ...rows.map((row) => row.map(text))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? "").length)));
  // A column of numbers is right-aligned, its header included, so magnitudes line up.
  const numeric = header.map((_, column) => rows.some((row) => typeof row[column] === "number"));
  const line = (row: readonly Cell[]) =>
    row
      .map((cell, column) => {
        const value = text(cell);
        const width = widths[column] ?? 0;
        return numeric[column] ? value.padStart(width) : value.padEnd(width);
      })
      .join("  ")
      .trimEnd();
  const rule = widths.map((width) => "-".repeat(width)).join("  ");
  return [line(header), rule, ...rows.map(line)].join("\n");
}

export function renderMarkdownTable(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const escapeCell = (value: string) => value.replaceAll("|", "\\|");
  const line = (row: readonly Cell[]) => `| ${row.map((cell) => escapeCell(text(cell))).join(" | ")} |`;
  const align = header.map((_, column) => (rows.some((row) => typeof row[column] === "number") ? "---:" : "---"));
  return [line(header), `|${align.join("|")}|`, ...rows.map(line)].join("\n");
}
