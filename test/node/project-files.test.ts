/**
 * The files a team expects of a project it adopts say true things: the licence matches package.json and the
 * runtime dependencies allow it, the version is the changelog's newest release and the one /health reports,
 * the CI workflow runs the README's own commands, and the dependency updates move the Cloudflare tools together.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { VERSION } from "../../src/shared/version.ts";
import { type DeclaredSetting, declaredInEnv } from "./declared-settings.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}${path}`, "utf8");
const pkg = JSON.parse(read("package.json")) as {
  version: string;
  license?: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Licences that let the bridge be published under MIT. */
const PERMISSIVE = new Set(["MIT", "ISC", "0BSD", "BSD-2-Clause", "BSD-3-Clause", "Apache-2.0"]);

/** A package and what it depends on at run time, each once. */
function runtimeTree(names: string[], seen = new Map<string, string>()): Map<string, string> {
  for (const name of names) {
    if (seen.has(name)) continue;
    const manifest = JSON.parse(read(`node_modules/${name}/package.json`)) as {
      license?: string;
      dependencies?: Record<string, string>;
    };
    seen.set(name, manifest.license ?? "(none)");
    runtimeTree(Object.keys(manifest.dependencies ?? {}), seen);
  }
  return seen;
}

/** The shell commands of the README's quick start that install and test. */
function readmeCommands(): string[] {
  const block = read("README.md").match(/## Quick start[\s\S]*?```sh\n([\s\S]*?)```/)?.[1] ?? "";
  return block
    .split("\n")
    .map((line) => line.replace(/#.*$/, "").trim())
    .filter((line) => line === "npm ci" || line === "npm test");
}

const semver = (version: string) => version.split(".").map(Number);

describe("the licence", () => {
  it("is MIT, in LICENSE and in package.json", () => {
    expect(read("LICENSE")).toMatch(/^MIT License\n/);
    expect(pkg.license).toBe("MIT");
  });

  it("is allowed by every package the Worker runs with", () => {
    const forbidding = [...runtimeTree(Object.keys(pkg.dependencies))].filter(
      ([, license]) => !PERMISSIVE.has(license),
    );
    expect(forbidding).toEqual([]);
  });
});

describe("the version", () => {
  const changelog = read("CHANGELOG.md");
  const releases = [...changelog.matchAll(/^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$/gm)].map((m) => m[1]);

  it("is above 0.1.0, the same in package.json and in what /health reports", () => {
    const [major = 0, minor = 0, patch = 0] = semver(pkg.version);
    expect(major * 1e6 + minor * 1e3 + patch).toBeGreaterThan(1e3);
    expect(VERSION).toBe(pkg.version);
  });

  it("is the changelog's newest release, under an [Unreleased] section, in Keep a Changelog's form", () => {
    expect(changelog).toMatch(/^# Changelog\n/);
    expect(changelog.indexOf("## [Unreleased]")).toBeGreaterThan(0);
    expect(changelog.indexOf("## [Unreleased]")).toBeLessThan(changelog.indexOf(`## [${pkg.version}]`));
    expect(releases[0]).toBe(pkg.version);
    expect(releases).toContain("0.1.0");
  });
});

describe("the CI workflow", () => {
  const workflow = parse(read(".github/workflows/ci.yml")) as {
    on: Record<string, unknown>;
    jobs: Record<string, { container?: string; steps: { run?: string; uses?: string }[] }>;
  };
  const jobs = Object.values(workflow.jobs);
  const runs = jobs.flatMap((job) => job.steps.flatMap((step) => (step.run ? [step.run] : [])));

  it("runs on pushes and pull requests, on Node 22", () => {
    expect(Object.keys(workflow.on)).toEqual(expect.arrayContaining(["push", "pull_request"]));
    for (const job of jobs) expect(job.container).toMatch(/^node:22\b/);
  });

  it("runs the README's install and test commands, with Chromium for the browser tests", () => {
    const commands = readmeCommands();
    expect(commands).toEqual(["npm ci", "npm test"]);
    for (const command of commands) expect(runs).toContain(command);
    expect(runs.some((run) => /apt-get install .*\bchromium\b/.test(run))).toBe(true);
  });

  it("is what .ci/run runs too", () => {
    const script = read(".ci/run");
    expect(script).toMatch(/^npm ci\b/m);
    expect(script).toMatch(/^npm test$/m);
  });
});

describe("the dependency updates", () => {
  const config = parse(read(".github/dependabot.yml")) as {
    version: number;
    updates: { "package-ecosystem": string; groups?: Record<string, { patterns: string[] }> }[];
  };
  const npm = config.updates.find((update) => update["package-ecosystem"] === "npm");
  const locked = JSON.parse(read("package-lock.json")) as { packages: Record<string, unknown> };

  it("moves wrangler, workerd, the vitest plugin and the Workers types in one group", () => {
    expect(config.version).toBe(2);
    const group = Object.values(npm?.groups ?? {}).find((candidate) => candidate.patterns.includes("wrangler"));
    expect(group?.patterns).toEqual(
      expect.arrayContaining(["wrangler", "workerd", "@cloudflare/vitest-plugin", "@cloudflare/workers-types"]),
    );
  });

  it("names only packages the project installs", () => {
    for (const group of Object.values(npm?.groups ?? {}))
      for (const pattern of group.patterns)
        expect(locked.packages, pattern).toHaveProperty([`node_modules/${pattern}`]);
  });
});

describe(".dev.vars.example", () => {
  const example = read(".dev.vars.example");
  const [secrets = "", vars = ""] = example.split(/^# -+ Vars\b.*$/m);
  const listed = (text: string) => [...text.matchAll(/^#? ?([A-Z][A-Z0-9_]*)=/gm)].map((match) => match[1]);

  it("lists every setting src/shared/env.ts declares, secrets apart from vars, each with how to get it", () => {
    const declared = declaredInEnv();
    expect(declared.length).toBeGreaterThan(10);
    const secret = (setting: DeclaredSetting) => setting.kind !== "var";
    expect(listed(secrets).sort()).toEqual(
      declared
        .filter(secret)
        .map((setting) => setting.name)
        .sort(),
    );
    for (const { name } of declared.filter((setting) => !secret(setting))) expect(listed(vars), name).toContain(name);
    for (const match of secrets.matchAll(/^([A-Z][A-Z0-9_]*)=$/gm))
      expect(secrets.split("\n")[secrets.split("\n").indexOf(match[0]) - 1], match[1]).toMatch(/^# /);
  });

  it("lists wrangler.toml's vars with their values as defaults, and is tracked, not ignored, by git", () => {
    const toml =
      read("wrangler.toml")
        .split(/^\[vars\]$/m)[1]
        ?.split(/^\[/m)[0] ?? "";
    for (const [, name, value] of toml.matchAll(/^([A-Z][A-Z0-9_]*) = "(.*)"$/gm))
      expect(vars).toContain(`# ${name}=${value}`);
    expect(read(".gitignore")).toMatch(/^!\.dev\.vars\.example$/m);
  });
});

describe("the other files", () => {
  it("include a security policy saying how to report and what is in scope, and a short guide to contributing", () => {
    expect(read("SECURITY.md")).toMatch(/## Reporting a vulnerability[\s\S]*## In scope/);
    const contributing = read("CONTRIBUTING.md");
    for (const command of readmeCommands()) expect(contributing).toContain(command);
    expect(contributing).toMatch(/## Releasing/);
    expect(existsSync(`${ROOT}CONTRIBUTING.md`)).toBe(true);
  });
});
