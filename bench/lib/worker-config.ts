/**
 * What the bench reads from, and writes beside, the bridge's wrangler.toml:
 * which bindings it declares, and a copy without one of them, so the same
 * code can be measured with and without it in one run.
 */
import { dirname, isAbsolute, join, relative } from "node:path";

const header = (name: string) => new RegExp(`^\\s*\\[\\[${name.replaceAll(".", "\\.")}\\]\\]`, "m");

/** Whether the config declares at least one `[[name]]` table (e.g. `queues.producers`, `d1_databases`). */
export function hasTables(toml: string, name: string): boolean {
  return header(name).test(toml);
}

/** The config without any `[[name]]` table: each runs from its header to the next table header. */
export function withoutTables(toml: string, name: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const line of toml.split("\n")) {
    if (/^\s*\[/.test(line)) skipping = header(name).test(line);
    if (!skipping) out.push(line);
  }
  return out.join("\n");
}

/**
 * Rewrites `main` and `migrations_dir` so that a copy written to `toDir`
 * still points at the Worker's entry and the ledger's schema (wrangler
 * resolves both against the config's own folder).
 */
export function relocated(toml: string, fromConfig: string, toDir: string): string {
  const moved = (path: string) => relative(toDir, isAbsolute(path) ? path : join(dirname(fromConfig), path));
  return toml
    .replace(/^(\s*main\s*=\s*)"([^"]+)"/m, (_, key: string, main: string) => `${key}"${moved(main)}"`)
    .replace(/^(\s*migrations_dir\s*=\s*)"([^"]+)"/m, (_, key: string, dir: string) => `${key}"${moved(dir)}"`);
}
