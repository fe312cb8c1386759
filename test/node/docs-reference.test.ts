/**
 * docs/reference.md says what the code does: every route and method the Hono app serves has a row in its
 * Routes table and every row a route; every setting src/shared/env.ts and wrangler.toml declare has a row
 * in its Settings section, with the kind and the default the code applies; every status and code the
 * code answers with has a row in its Response codes table, and every row an answer. A route, setting or
 * code added or removed without the docs fails here, naming the row.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it, vi } from "vitest";
import { unstable_readConfig } from "wrangler";
import { type DeclaredSetting, declaredInEnv } from "./declared-settings.ts";

// The app's import graph reaches the Durable Object classes, whose base class only workerd provides.
vi.mock("cloudflare:workers", () => ({ DurableObject: class {} }));

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const read = (path: string) => readFileSync(`${ROOT}${path}`, "utf8");
const reference = read("docs/reference.md");

/** The text of a `## ` section of reference.md, up to the next one. */
function section(title: string): string {
  const start = reference.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`docs/reference.md has no "## ${title}" section`);
  const end = reference.indexOf("\n## ", start + 1);
  return reference.slice(start, end < 0 ? undefined : end);
}

/** A Markdown table row's cells, trimmed. */
const cells = (row: string) =>
  row
    .replace(/\\\|/g, "\u0000")
    .split("|")
    .slice(1, -1)
    .map((cell) => cell.replaceAll("\u0000", "|").trim());

// ---- Routes -----------------------------------------------------------------------------------------------

const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"];
// Imported by paths the Node-side typecheck does not follow: these modules' types are the Worker's.
const APP = "../../src/app.ts";
const LEDGER = "../../src/delivery/ledger.ts";
const SETTINGS = "../../src/shared/settings.ts";

type Parsed<T> = { ready: true; settings: T } | { ready: false };
interface SettingsModule {
  parseSettings(env: object): {
    inbound: Parsed<{ segmentApiHost: string }>;
    outbound: Parsed<{ veroApiUrl: string; acceptFirstEventSignature: boolean }>;
  };
  parseRetryPolicy(env: object): { policy: { baseSeconds: number; horizonSeconds: number; retentionSeconds: number } };
  parseAlertSettings(env: object): {
    webhook?: unknown;
    format: string;
    routingKey?: string;
    failureRate: number;
    minAttempts: number;
    stalledMinutes: number;
    repeatMinutes: number;
    publicUrl?: string;
  };
  logSampleRate(env: object): number;
}

/** `/v1/:call{(?:a|b)}/` as the paths it matches: `/v1/a/`, `/v1/b/`. */
function expandPattern(path: string): string[] {
  const match = path.match(/:[a-z]+\{\(\?:([^)]*)\)\}/i);
  if (!match) return [path];
  return (match[1] ?? "").split("|").flatMap((choice) => expandPattern(path.replace(match[0], choice)));
}

/** `/v1/{a,b}` as `/v1/a`, `/v1/b`. */
function expandBraces(path: string): string[] {
  const match = path.match(/\{([^}]*)\}/);
  if (!match) return [path];
  return (match[1] ?? "").split(",").flatMap((choice) => expandBraces(path.replace(match[0], choice.trim())));
}

/** What the Hono app serves, `METHOD /path`; middleware (`ALL`) left out. */
async function servedRoutes(): Promise<Set<string>> {
  const { app } = (await import(APP)) as { app: { routes: { method: string; path: string }[] } };
  return new Set(
    app.routes
      .filter((route) => METHODS.includes(route.method))
      .flatMap((route) => expandPattern(route.path).map((path) => `${route.method} ${path}`)),
  );
}

/**
 * The Routes table's first column, read as a person reads it: `GET /health`, `POST /v1/batch`, `/v1/import`
 * (the method carries over), `GET`, `POST /path` (both methods), `/v1/{a,b}`, and `/prefix/...` for every
 * route under a prefix. Query strings are left out.
 */
function documentedRoutes(table: string): { exact: Set<string>; prefixes: string[] } {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const row of table.split("\n").filter((line) => line.startsWith("| `"))) {
    const first = cells(row)[0] ?? "";
    let methods: string[] = [];
    let pending: string[] = [];
    for (const [, chunk = ""] of first.matchAll(/`([^`]+)`/g)) {
      if (METHODS.includes(chunk)) {
        pending.push(chunk);
        continue;
      }
      const match = chunk.match(/^(?:([A-Z]+) )?(\/\S*)$/);
      if (!match) continue;
      if (match[1]) {
        if (!METHODS.includes(match[1])) continue;
        methods = [...pending, match[1]];
        pending = [];
      }
      const path = (match[2] ?? "").replace(/\?.*$/, "");
      if (path.endsWith("/...")) prefixes.push(path.slice(0, -3));
      else for (const expanded of expandBraces(path)) for (const method of methods) exact.add(`${method} ${expanded}`);
    }
  }
  return { exact, prefixes };
}

/** The routes the code serves that the table lacks, and the table's routes the code does not serve. */
function routeDrift(served: Set<string>, documented: ReturnType<typeof documentedRoutes>): string[] {
  const problems: string[] = [];
  for (const route of [...served].sort()) {
    const path = route.slice(route.indexOf(" ") + 1);
    if (!documented.exact.has(route) && !documented.prefixes.some((prefix) => path.startsWith(prefix)))
      problems.push(`docs/reference.md's Routes table has no row for ${route}`);
  }
  for (const route of [...documented.exact].sort())
    if (!served.has(route))
      problems.push(`docs/reference.md's Routes table lists ${route}, which the app does not serve`);
  return problems;
}

// ---- Settings ---------------------------------------------------------------------------------------------

type Declared = DeclaredSetting;

/** The settings env.ts declares and the vars wrangler.toml sets. */
function declaredSettings(): Declared[] {
  const declared = declaredInEnv();
  const vars = unstable_readConfig({ config: `${ROOT}wrangler.toml` }).vars;
  for (const name of Object.keys(vars))
    if (!declared.some((entry) => entry.name === name)) declared.push({ name, kind: "var" });
  return declared;
}

/** A configuration in which every direction is ready, so that the settings' defaults can be read off. */
const READY = {
  SEGMENT_WRITE_KEY: "w",
  VERO_WEBHOOK_TOKEN: "t".repeat(32),
  VERO_AUTH_TOKEN: "a",
  SEGMENT_SHARED_SECRET: "s".repeat(32),
  ADMIN_TOKEN: "x".repeat(32),
};

/** The defaults the code applies when a setting is unset, read from the code's own parsing; undefined: none. */
async function codeDefaults(): Promise<Record<string, unknown>> {
  const { retentionDays } = (await import(LEDGER)) as { retentionDays: (env: object) => number };
  const { parseSettings, parseRetryPolicy, parseAlertSettings, logSampleRate } = (await import(
    SETTINGS
  )) as SettingsModule;
  const settings = parseSettings(READY);
  const retry = parseRetryPolicy({}).policy;
  const alerts = parseAlertSettings({});
  if (!settings.inbound.ready || !settings.outbound.ready) throw new Error("READY does not configure both directions");
  return {
    SEGMENT_API_HOST: settings.inbound.settings.segmentApiHost,
    VERO_API_URL: settings.outbound.settings.veroApiUrl,
    SEGMENT_ACCEPT_FIRST_EVENT_SIGNATURE: settings.outbound.settings.acceptFirstEventSignature,
    QUEUE_RETRY_BASE_SECONDS: retry.baseSeconds,
    QUEUE_RETRY_HORIZON_HOURS: retry.horizonSeconds / 3600,
    QUEUE_RETENTION_HOURS: retry.retentionSeconds / 3600,
    LEDGER_RETENTION_DAYS: retentionDays({}),
    LOG_SAMPLE_RATE: logSampleRate({}),
    ALERT_WEBHOOK_URL: alerts.webhook,
    ALERT_WEBHOOK_FORMAT: alerts.format,
    ALERT_ROUTING_KEY: alerts.routingKey,
    ALERT_FAILURE_RATE: alerts.failureRate,
    ALERT_MIN_ATTEMPTS: alerts.minAttempts,
    ALERT_STALLED_MINUTES: alerts.stalledMinutes,
    ALERT_REPEAT_MINUTES: alerts.repeatMinutes,
    PUBLIC_URL: alerts.publicUrl,
  };
}

/** Each setting the Settings section documents: its kind and default, from a table row or a `NAME` (kind, ..., default X) paragraph. */
function documentedSettings(text: string): Map<string, { kind: string; default: string }> {
  const documented = new Map<string, { kind: string; default: string }>();
  for (const line of text.split("\n")) {
    const row = line.match(/^\| `([A-Z][A-Z0-9_]*)`/);
    const [, kind = "", , fallback = ""] = cells(line);
    // The bindings table shares the section: its rows are kinds of binding, not var or secret.
    if (row?.[1] && /^(var|secret)\b/.test(kind)) {
      documented.set(row[1], { kind, default: fallback });
      continue;
    }
    const paragraph = line.match(/^`([A-Z][A-Z0-9_]*)` \((var|secret)\b([^)]*)\)/);
    if (paragraph?.[1])
      documented.set(paragraph[1], {
        kind: paragraph[2] ?? "",
        default: paragraph[3]?.match(/default (`[^`]*`|none)/)?.[1] ?? "",
      });
  }
  return documented;
}

const shownDefault = (value: unknown) =>
  value === undefined ? "none" : `\`${typeof value === "object" ? JSON.stringify(value) : String(value)}\``;

/** Every way the Settings section and the code disagree, one sentence each. */
function settingDrift(
  declared: Declared[],
  defaults: Record<string, unknown>,
  documented: ReturnType<typeof documentedSettings>,
): string[] {
  const problems: string[] = [];
  for (const setting of declared) {
    const row = documented.get(setting.name);
    if (!row) {
      problems.push(
        `docs/reference.md's Settings section has no row for ${setting.name} (${setting.kind}, declared in src/shared/env.ts or wrangler.toml)`,
      );
      continue;
    }
    if (setting.kind === undefined) {
      problems.push(`src/shared/env.ts's comment for ${setting.name} must start with Secret: or Var:`);
      continue;
    }
    const kinds = setting.kind === "var or secret" ? ["var", "secret"] : [setting.kind];
    // "var (JSON)" is a var.
    if (!kinds.includes(row.kind.split(/\s/)[0] ?? ""))
      problems.push(
        `docs/reference.md's row for ${setting.name} says kind "${row.kind}"; the code reads a ${setting.kind}`,
      );
    const wanted =
      setting.name in defaults
        ? shownDefault(defaults[setting.name])
        : setting.commentDefault !== undefined
          ? `\`${setting.commentDefault}\``
          : undefined;
    if (wanted !== undefined && !row.default.startsWith(wanted))
      problems.push(
        `docs/reference.md's row for ${setting.name} gives the default ${row.default || "(none)"}; the code's is ${wanted}`,
      );
  }
  for (const name of documented.keys())
    if (!declared.some((setting) => setting.name === name))
      problems.push(`docs/reference.md's Settings section documents ${name}, which the code does not read`);
  return problems;
}

// ---- Response codes ---------------------------------------------------------------------------------------

/** Every `status code` the code answers with: each `new BridgeError(status, "code"` and `errorBody(status, "code"`. */
function answeredCodes(): Map<string, string> {
  const answered = new Map<string, string>();
  const files = readdirSync(`${ROOT}src`, { recursive: true, encoding: "utf8" })
    .filter((name) => /\.tsx?$/.test(name) && !name.endsWith(".d.ts"))
    .map((name) => `src/${name}`);
  for (const file of files) {
    const source = read(file);
    for (const match of source.matchAll(/(?:new BridgeError|errorBody)\(\s*(\d{3}|\w+),\s*"([a-z_]+)"/g)) {
      const status = /^\d{3}$/.test(match[1] ?? "") ? (match[1] as string) : "any";
      answered.set(`${status} ${match[2]}`, file);
    }
  }
  return answered;
}

/** The Response codes table's `status code` pairs. */
function documentedCodes(text: string): Set<string> {
  const documented = new Set<string>();
  for (const line of text.split("\n")) {
    const [status = "", code = ""] = cells(line);
    const pair = `${status.replaceAll("`", "")} ${code.replaceAll("`", "")}`;
    if (/^\d{3} [a-z_]+$/.test(pair)) documented.add(pair);
  }
  return documented;
}

function codeDrift(answered: Map<string, string>, documented: Set<string>): string[] {
  const problems: string[] = [];
  for (const [pair, file] of [...answered].sort()) {
    const [status, code] = pair.split(" ");
    const found = status === "any" ? [...documented].some((entry) => entry.endsWith(` ${code}`)) : documented.has(pair);
    if (!found)
      problems.push(
        `docs/reference.md's Response codes table has no row for ${status === "any" ? code : pair} (answered in ${file})`,
      );
  }
  for (const pair of [...documented].sort()) {
    const code = pair.split(" ")[1];
    if (!answered.has(pair) && !answered.has(`any ${code}`))
      problems.push(`docs/reference.md's Response codes table lists ${pair}, which no code answers`);
  }
  return problems;
}

// ---- The checks -------------------------------------------------------------------------------------------

describe("docs/reference.md against the code", () => {
  it("has a row for every route and method the app serves, and no route it does not serve", async () => {
    const served = await servedRoutes();
    expect(served.size).toBeGreaterThan(20);
    expect(routeDrift(served, documentedRoutes(section("Routes")))).toEqual([]);
  });

  it("documents every setting the code reads, with its kind and the default the code applies", async () => {
    const declared = declaredSettings();
    expect(declared.length).toBeGreaterThan(20);
    expect(settingDrift(declared, await codeDefaults(), documentedSettings(section("Settings")))).toEqual([]);
  });

  it("has a row for every status and code the bridge answers with, and none it never answers", () => {
    const answered = answeredCodes();
    expect(answered.size).toBeGreaterThan(15);
    expect(codeDrift(answered, documentedCodes(section("Response codes")))).toEqual([]);
  });
});

describe("the drift checks", () => {
  it("read each setting of env.ts with its kind and default, whatever the comment's layout", () => {
    const source = [
      "interface Undeclared {",
      "  /** Secret: one line. */",
      "  ONE: string;",
      "  /**",
      "   * Var: over two lines,",
      '   * with a default (default "4").',
      "   */",
      "  TWO?: string;",
      "  THREE: string;",
      "}",
    ].join("\n");
    expect(declaredInEnv(source)).toEqual([
      { name: "ONE", kind: "secret", commentDefault: undefined },
      { name: "TWO", kind: "var", commentDefault: "4" },
      { name: "THREE", kind: undefined, commentDefault: undefined },
    ]);
  });

  it("name the row a new route, setting or code lacks, and the row left over from a removed one", () => {
    const documented = documentedRoutes(
      "| `GET /a` (and `HEAD`) | x |\n| `GET`, `POST /b?x=` | x |\n| `POST /v1/{c,d}`, `/e` | x |\n| `/f/...` | x |",
    );
    expect([...documented.exact].sort()).toEqual([
      "GET /a",
      "GET /b",
      "POST /b",
      "POST /e",
      "POST /v1/c",
      "POST /v1/d",
    ]);
    const served = new Set([...documented.exact, "GET /f/g", "PUT /new"].filter((route) => route !== "POST /e"));
    expect(routeDrift(served, documented)).toEqual([
      "docs/reference.md's Routes table has no row for PUT /new",
      "docs/reference.md's Routes table lists POST /e, which the app does not serve",
    ]);

    const rows = documentedSettings(
      "| `A` | secret | x | none | y |\n| `B` | var | x | `5` | y |\n`C` (var, outbound, default `false`): text\n| `OLD` | var | x | none | y |",
    );
    expect(
      settingDrift(
        [
          { name: "A", kind: "secret" },
          { name: "B", kind: "var" },
          { name: "C", kind: "var" },
          { name: "NEW_ONE", kind: "var", commentDefault: "3" },
        ],
        { A: undefined, B: 6, C: false },
        rows,
      ),
    ).toEqual([
      "docs/reference.md's row for B gives the default `5`; the code's is `6`",
      "docs/reference.md's Settings section has no row for NEW_ONE (var, declared in src/shared/env.ts or wrangler.toml)",
      "docs/reference.md's Settings section documents OLD, which the code does not read",
    ]);

    const codes = documentedCodes("| status | code |\n| `400` | `bad_request` | x |\n| `409` | `gone_now` | x |");
    expect(
      codeDrift(
        new Map([
          ["400 bad_request", "a.ts"],
          ["422 brand_new", "b.ts"],
        ]),
        codes,
      ),
    ).toEqual([
      "docs/reference.md's Response codes table has no row for 422 brand_new (answered in b.ts)",
      "docs/reference.md's Response codes table lists 409 gone_now, which no code answers",
    ]);
  });
});
