/**
 * The floors of src/: a file imports only from its own folder or from a
 * folder on a lower floor, so that a reader follows an event downward and
 * back only to return. The picture in docs/development.md#floors is this
 * table.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../../src", import.meta.url));

/** Each folder's floor: a file may import from its own folder and any folder on a lower floor. */
const FLOORS: Record<string, number> = {
  shared: 0,
  delivery: 1,
  inbound: 2,
  outbound: 2,
  admin: 3,
  // src/*.ts: the entry, the app and what only they use (health, readiness).
  ".": 4,
};

/** The folder of src/ a file belongs to: its first path segment, or "." for a file directly in src/. */
function folderOf(fileInSrc: string): string {
  const [first, ...rest] = fileInSrc.split(sep);
  return rest.length === 0 ? "." : (first ?? ".");
}

/** Every relative import and export-from specifier of a TypeScript source, type-only ones included. */
function importsOf(source: string): string[] {
  const specifiers: string[] = [];
  for (const match of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*"(\.[^"]+)"/g))
    if (match[1]) specifiers.push(match[1]);
  for (const match of source.matchAll(/\bimport\s*\(\s*"(\.[^"]+)"\s*\)/g)) if (match[1]) specifiers.push(match[1]);
  return specifiers;
}

/** "a.ts -> b.ts (floor x imports floor y)" for every import of `files` (paths in src/) that runs upward. */
function upwardImports(files: ReadonlyMap<string, string>): string[] {
  const found: string[] = [];
  for (const [file, source] of files) {
    const from = folderOf(file);
    for (const specifier of importsOf(source)) {
      const target = relative(".", normalize(join(dirname(file), specifier)));
      if (target.startsWith("..")) {
        found.push(`${file} -> ${specifier} (outside src/)`);
        continue;
      }
      const to = folderOf(target);
      const [fromFloor, toFloor] = [FLOORS[from], FLOORS[to]];
      if (fromFloor === undefined || toFloor === undefined) {
        found.push(`${file} -> ${target} (a folder with no floor: add it to FLOORS and the picture)`);
        continue;
      }
      if (from !== to && toFloor >= fromFloor) found.push(`${file} -> ${target} (${from}/ may not import ${to}/)`);
    }
  }
  return found;
}

function sources(): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of readdirSync(SRC, { recursive: true, encoding: "utf8" }))
    if (/\.tsx?$/.test(name) && !name.endsWith(".d.ts")) files.set(name, readFileSync(join(SRC, name), "utf8"));
  return files;
}

describe("the floors of src/", () => {
  it("no file imports from a folder on its own floor or above (inbound and outbound never import each other)", () => {
    expect(upwardImports(sources())).toEqual([]);
  });

  it("the check sees an upward import, a sideways one between the directions, and a type-only one", () => {
    const files = new Map([
      [join("shared", "health.ts"), 'import { x } from "../admin/alerts/conditions.ts";'],
      [join("inbound", "a.ts"), 'import type { Job } from "../outbound/job.ts";'],
      [join("delivery", "b.ts"), 'export { y } from "../shared/log.ts";\nimport { z } from "./c.ts";'],
      [join("admin", "c.tsx"), 'import { w } from "../outbound/vero.ts";'],
    ]);
    expect(upwardImports(files)).toEqual([
      `${join("shared", "health.ts")} -> ${join("admin", "alerts", "conditions.ts")} (shared/ may not import admin/)`,
      `${join("inbound", "a.ts")} -> ${join("outbound", "job.ts")} (inbound/ may not import outbound/)`,
    ]);
  });
});
