/**
 * The documentation stands on its own: every relative link in README.md and
 * docs/ resolves to a file of this repository (and its `#anchor` to a heading
 * there), nothing points outside the repository, and the README stays short
 * enough to read in a few minutes.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MAX_README_BYTES = 12_288;

/** What no document may name: files that exist only outside this repository. */
const OUTSIDE_MENTIONS = [/CONTRACT\.md/i, /\.\.\/shared/];

/** README.md and every Markdown file under docs/, as paths relative to `root`. */
function documents(root: string): string[] {
  const docs = join(root, "docs");
  const nested = existsSync(docs)
    ? readdirSync(docs, { recursive: true, encoding: "utf8" })
        .filter((name) => name.endsWith(".md"))
        .map((name) => join("docs", name))
    : [];
  return ["README.md", ...nested.sort()];
}

/** The text outside fenced code blocks, line by line (fenced lines become empty, so line numbers hold). */
function proseLines(markdown: string): string[] {
  let fence: string | undefined;
  return markdown.split("\n").map((line) => {
    const marker = line.match(/^\s*(`{3,}|~{3,})/)?.[1];
    if (fence === undefined && marker !== undefined) {
      fence = marker;
      return "";
    }
    if (fence !== undefined) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length) fence = undefined;
      return "";
    }
    return line;
  });
}

/**
 * GitHub's heading anchors: the heading's text without Markdown syntax,
 * lower-cased, without punctuation but hyphens and underscores, spaces as
 * hyphens; a repeated slug gets `-1`, `-2`, ...
 */
function headingSlugs(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const slugs = new Set<string>();
  for (const line of proseLines(markdown)) {
    const heading = line.match(/^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/)?.[1];
    if (heading === undefined) continue;
    const text = heading
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
      .replace(/[`*]/g, "")
      .replace(/<[^>]+>/g, "");
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "")
      .replace(/ /g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    slugs.add(count === 0 ? base : `${base}-${count}`);
  }
  return slugs;
}

/** Inline links and images `[text](target)`, and reference definitions `[label]: target`. */
function linkTargets(line: string): string[] {
  const prose = line.replace(/`[^`]*`/g, "");
  const inline = [...prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+["'(][^)]*)?\)/g)].map((match) => match[1] ?? "");
  const definition = prose.match(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/)?.[1];
  return definition === undefined ? inline : [...inline, definition];
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//");

/** Every problem with the documentation under `root`, one sentence each, naming the file and line. */
function documentationProblems(root: string): string[] {
  const problems: string[] = [];
  const slugCache = new Map<string, Set<string>>();
  const slugsOf = (file: string) => {
    let slugs = slugCache.get(file);
    if (!slugs) {
      slugs = headingSlugs(readFileSync(file, "utf8"));
      slugCache.set(file, slugs);
    }
    return slugs;
  };

  for (const document of documents(root)) {
    const path = join(root, document);
    const markdown = readFileSync(path, "utf8");
    const rawLines = markdown.split("\n");
    for (const [index, line] of rawLines.entries()) {
      for (const pattern of OUTSIDE_MENTIONS) {
        const found = line.match(pattern)?.[0];
        if (found) problems.push(`${document}:${index + 1}: names ${found}, which is outside the repository`);
      }
    }
    for (const [index, line] of proseLines(markdown).entries()) {
      for (const target of linkTargets(line)) {
        const where = `${document}:${index + 1}: link ${target}`;
        if (isExternal(target)) continue;
        const [rawPath = "", anchor] = target.split("#", 2);
        const file = rawPath === "" ? path : resolve(dirname(path), decodeURIComponent(rawPath));
        const inside = relative(root, file);
        if (inside.startsWith(`..${sep}`) || inside === "..") {
          problems.push(`${where} leaves the repository`);
          continue;
        }
        if (!existsSync(file)) {
          problems.push(`${where}: ${inside} does not exist`);
          continue;
        }
        if (anchor === undefined || anchor === "") continue;
        if (statSync(file).isDirectory() || !file.endsWith(".md")) {
          problems.push(`${where}: #${anchor} points into ${inside}, which has no headings`);
        } else if (!slugsOf(file).has(decodeURIComponent(anchor).toLowerCase())) {
          problems.push(`${where}: ${inside} has no heading #${anchor}`);
        }
      }
    }
  }
  return problems;
}

describe("the documentation", () => {
  it("has only links that resolve inside the repository, anchors included, and names nothing outside it", () => {
    expect(documentationProblems(ROOT)).toEqual([]);
  });

  it(`keeps README.md within ${MAX_README_BYTES} bytes`, () => {
    expect(statSync(join(ROOT, "README.md")).size).toBeLessThanOrEqual(MAX_README_BYTES);
  });
});

describe("the link check", () => {
  const scratch = mkdtempSync(join(tmpdir(), "docs-links-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  const write = (files: Record<string, string>) => {
    const root = mkdtempSync(join(scratch, "repo-"));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, name)), { recursive: true });
      writeFileSync(join(root, name), text);
    }
    return root;
  };

  it("accepts links to files and to GitHub-style heading anchors, and ignores code", () => {
    const root = write({
      "README.md": [
        "# Title",
        "See [inbound](docs/inbound.md#what-segment-receives), [again](docs/inbound.md#responses-1),",
        "[here](#title), [web](https://example.com/x.md) and ![img](docs/a.svg).",
        "`[not a link](missing.md)`",
        "```sh",
        "# not a heading, and [not a link](missing.md)",
        "```",
      ].join("\n"),
      "docs/inbound.md":
        "# Inbound\n## What `Segment` receives\n## Responses\n## Responses\n[back](../README.md#title)\n",
      "docs/a.svg": "<svg/>",
    });
    expect(documentationProblems(root)).toEqual([]);
  });

  it("names each missing file, missing anchor, escape from the repository and outside mention", () => {
    const root = write({
      "README.md": "# Title\n[gone](docs/gone.md) and [anchor](docs/inbound.md#nowhere)\n",
      "docs/inbound.md": "# Inbound\n[up](../../elsewhere.md) [code](#not-a-heading)\n```\n# not-a-heading\n```\n",
      "docs/pending/wt-x.md": "Per CONTRACT.md and [shared](../../../shared/samples.md)\n",
    });
    expect(documentationProblems(root)).toEqual([
      "README.md:2: link docs/gone.md: docs/gone.md does not exist",
      "README.md:2: link docs/inbound.md#nowhere: docs/inbound.md has no heading #nowhere",
      "docs/inbound.md:2: link ../../elsewhere.md leaves the repository",
      "docs/inbound.md:2: link #not-a-heading: docs/inbound.md has no heading #not-a-heading",
      "docs/pending/wt-x.md:1: names CONTRACT.md, which is outside the repository",
      "docs/pending/wt-x.md:1: names ../shared, which is outside the repository",
      "docs/pending/wt-x.md:1: link ../../../shared/samples.md leaves the repository",
    ]);
  });
});
