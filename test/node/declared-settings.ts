/**
 * The settings src/shared/env.ts declares beside wrangler.toml's (secrets, and vars left at their defaults),
 * each with what its doc comment says: its kind (`Secret:`, `Var:`, `Var or secret:`, `Var, ...:`) and, when
 * it says `(default X)`, its default. Read from the source, so that a setting added there is checked by the
 * tests that use this (the reference's Settings section, .dev.vars.example) without a list to keep.
 */
import { readFileSync } from "node:fs";

export interface DeclaredSetting {
  name: string;
  /** Undefined when the comment names no kind, which the tests report. */
  kind?: "secret" | "var" | "var or secret";
  commentDefault?: string;
}

export function declaredInEnv(source = readFileSync(new URL("../../src/shared/env.ts", import.meta.url), "utf8")) {
  const start = source.indexOf("interface Undeclared");
  const body = source.slice(start, source.indexOf("\n}", start));
  const settings: DeclaredSetting[] = [];
  for (const match of body.matchAll(/^\s*([A-Z][A-Z0-9_]*)\??:\s*string;/gm)) {
    const before = body.slice(0, match.index);
    const open = before.lastIndexOf("/**");
    const close = before.lastIndexOf("*/");
    // The comment right above the property, if there is one, as plain text.
    const comment =
      open >= 0 && close > open && before.slice(close + 2).trim() === ""
        ? before
            .slice(open + 3, close)
            .replace(/^\s*\*\s?/gm, "")
            .replace(/\s+/g, " ")
            .trim()
        : "";
    const kind = comment.match(/^(Secret|Var or secret|Var)\b/)?.[1]?.toLowerCase() as DeclaredSetting["kind"];
    settings.push({
      name: match[1] ?? "",
      kind,
      // `(default "false")` and `(default false)` say the same.
      commentDefault: comment
        .match(/\(default ([^),;]+)/)?.[1]
        ?.trim()
        .replace(/^"(.*)"$/, "$1"),
    });
  }
  return settings;
}
