/**
 * What the fuzz suites share: a fixed seed that a failure can be replayed
 * from, and generators of hostile input (arbitrary bytes, arbitrary JSON
 * with dangerous keys, deep nesting, and valid payloads mutated a few
 * edits at a time, so that most inputs get past the first checks).
 */
import fc from "fast-check";
import { expect, inject, vi } from "vitest";

const settings = inject("fuzz");

/** Fixed, so that `npm test` is repeatable; FUZZ_SEED=<n> replays another run. */
export const FUZZ_SEED = settings.seed === "" ? 20_261_128 : Number(settings.seed);

/**
 * Runs `property` with the suite's seed and at least `numRuns` inputs
 * (FUZZ_RUNS raises it), and on failure throws fast-check's report followed
 * by the exact command that replays the shrunk counterexample.
 */
export async function checkProperty<Ts>(
  property: fc.IAsyncPropertyWithHooks<Ts> | fc.IPropertyWithHooks<Ts>,
  { file, test, numRuns }: { file: string; test: string; numRuns: number },
): Promise<void> {
  const runs = settings.runs === "" ? numRuns : Math.max(numRuns, Number(settings.runs));
  const details = await fc.check(property, {
    seed: FUZZ_SEED,
    numRuns: runs,
    ...(settings.path === "" ? {} : { path: settings.path }),
  });
  if (!details.failed) return;
  const replay = `FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath} npx vitest run ${file} -t "${test}"`;
  throw new Error(
    [
      `Property failed after ${details.numRuns} runs (seed ${details.seed}, path "${details.counterexamplePath}"), shrunk ${details.numShrinks} times.`,
      `Counterexample: ${shorten(fc.stringify(details.counterexample))}`,
      `Failure: ${shorten(details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance))}`,
      `Replay it with:\n  ${replay}`,
    ].join("\n\n"),
  );
}

/** A counterexample can be a megabyte of nesting: the report keeps its ends. */
function shorten(text: string, max = 3_000): string {
  return text.length <= max
    ? text
    : `${text.slice(0, max / 2)} ...(${text.length - max} characters)... ${text.slice(-max / 2)}`;
}

/** Keys that have broken JSON handlers elsewhere, and the field names the bridge reads. */
const DANGEROUS_KEYS = ["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "toJSON"];
const FIELD_NAMES = [
  "type",
  "user",
  "id",
  "email",
  "campaign",
  "changes",
  "_tags",
  "userId",
  "anonymousId",
  "previousId",
  "messageId",
  "event",
  "batch",
  "context",
  "traits",
  "properties",
  "integrations",
  "integration",
  "name",
  "Vero",
  "All",
  "tags",
  "action",
  "values",
  "timestamp",
];

export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 10 }) },
  { weight: 2, arbitrary: fc.constantFrom(...DANGEROUS_KEYS) },
  { weight: 2, arbitrary: fc.constantFrom(...FIELD_NAMES) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 6 }) },
);

/**
 * Builds an object whose keys are all own, enumerable data properties:
 * plain assignment of `__proto__` would set the prototype instead, and
 * JSON.stringify would then leave the key out of the body.
 */
export function objectOf(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const object: Record<string, unknown> = {};
  for (const [key, value] of entries) define(object, key, value);
  return object;
}

function define(holder: object, key: string | number, value: unknown): void {
  Object.defineProperty(holder, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Strings that have hurt string handling: unicode, lone surrogates, control characters, and lengths around 255. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 10 }) },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "\u0000", "null", "0", "-1", "1e400", "jane@example.com", "%7B") },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(254, 255, 256, 300, 5_000), fc.constantFrom("x", "é", "😀", "@a.io"))
      .map(([length, unit]) => unit.repeat(Math.ceil(length / unit.length)).slice(0, length)),
  },
);

const scalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 2 ** 53, -(2 ** 63), 1e21, 1.5, 1_700_000_000, 1_700_000_000_000),
  hostileString,
);

/** Any JSON value (as parsed data), with dangerous keys and odd strings, a few levels deep. */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; array: unknown[]; object: unknown }>(
  (tie) => ({
    value: fc.oneof({ depthSize: "small", withCrossShrink: true }, scalar, tie("array"), tie("object")),
    array: fc.array(tie("value"), { maxLength: 4 }),
    object: fc.array(fc.tuple(hostileKey, tie("value")), { maxLength: 5 }).map(objectOf),
  }),
).value;

/** `value` wrapped in `depth` levels of objects and arrays, built without recursion. */
export function nested(depth: number, value: unknown = 1): unknown {
  let node = value;
  for (let level = 0; level < depth; level++) node = level % 2 === 0 ? [node] : { n: node };
  return node;
}

/**
 * As JSON text, so that the test itself never has to stringify a value
 * nested deeper than its own stack allows.
 */
export function nestedText(depth: number, inner = "1"): string {
  const open: string[] = [];
  const close: string[] = [];
  for (let level = 0; level < depth; level++) {
    open.push(level % 2 === 0 ? "[" : '{"n":');
    close.push(level % 2 === 0 ? "]" : "}");
  }
  return `${open.reverse().join("")}${inner}${close.join("")}`;
}

/** A replacement value for a field: wrong types, huge strings, deep nesting, anything. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: scalar },
  { weight: 2, arbitrary: hostileJson },
  { weight: 1, arbitrary: fc.integer({ min: 20, max: 40 }).map((depth) => nested(depth)) },
  { weight: 1, arbitrary: fc.constantFrom(40_000, 600_000).map((length) => "x".repeat(length)) },
);

type Path = readonly (string | number)[];

/** Every node of a parsed JSON value, the root first, with its path. */
function nodes(value: unknown, path: Path = []): { path: Path; value: unknown }[] {
  const found = [{ path, value }];
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) found.push(...nodes(item, [...path, index]));
  } else if (typeof value === "object" && value !== null)
    for (const [key, item] of Object.entries(value)) found.push(...nodes(item, [...path, key]));
  return found;
}

export type Edit =
  | { op: "set"; at: number; value: unknown }
  | { op: "delete"; at: number }
  | { op: "add"; at: number; key: string; value: unknown };

export const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), value: hostileValue }),
  fc.record({ op: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("add" as const), at: fc.nat(), key: hostileKey, value: hostileValue }),
);

/**
 * Applies `edits` to a copy of `base`. `at` picks a node of the current
 * value (modulo their number), so every edit lands somewhere real: a field
 * set to a wrong type, a key removed, an extra key added to an object.
 */
export function mutate(base: unknown, edits: readonly Edit[]): unknown {
  let root: unknown = structuredClone(base);
  for (const change of edits) {
    const all = nodes(root);
    const target = all[change.at % all.length];
    if (!target) continue;
    if (change.op === "add") {
      const objects = all.filter((node) => typeof node.value === "object" && node.value !== null);
      const holder = objects[change.at % objects.length]?.value;
      if (Array.isArray(holder)) holder.push(change.value);
      else if (typeof holder === "object" && holder !== null) define(holder, change.key, change.value);
      continue;
    }
    const parentPath = target.path.slice(0, -1);
    const key = target.path[target.path.length - 1];
    if (key === undefined) {
      root = change.op === "set" ? change.value : undefined;
      continue;
    }
    const parent = all.find(
      (node) => node.path.length === parentPath.length && node.path.every((part, i) => part === parentPath[i]),
    )?.value;
    if (typeof parent !== "object" || parent === null) continue;
    if (change.op === "set") define(parent, key, change.value);
    else if (Array.isArray(parent) && typeof key === "number") parent.splice(key, 1);
    else Reflect.deleteProperty(parent, key);
  }
  return root;
}

/** Mutations of `fixtures`: none at all about one time in five, so that valid payloads get through. */
export function mutated(fixtures: readonly unknown[]): fc.Arbitrary<unknown> {
  return fc
    .tuple(
      fc.constantFrom(...fixtures),
      fc.oneof(
        { weight: 1, arbitrary: fc.constant([]) },
        { weight: 4, arbitrary: fc.array(edit, { minLength: 1, maxLength: 3 }) },
      ),
    )
    .map(([fixture, edits]) => mutate(fixture, edits));
}

/** The keys of Object.prototype, to prove after a run that nothing was added to it. */
export function prototypeSnapshot(): string[] {
  return Object.getOwnPropertyNames(Object.prototype).sort();
}

/** Proves no input polluted a prototype shared by every object. */
export function expectPrototypesClean(before: readonly string[]): void {
  expect(prototypeSnapshot()).toEqual(before);
  const probe: Record<string, unknown> = {};
  for (const key of ["polluted", "n", "type", "email", "isAdmin", "integration", "Vero"])
    expect(probe[key]).toBeUndefined();
  expect(Object.getPrototypeOf(probe)).toBe(Object.prototype);
  expect(Object.getPrototypeOf([])).toBe(Array.prototype);
}

/**
 * Swallows what the Worker logs during `run` (thousands of lines would drown
 * the test output) and returns the lines, so a suite can still assert on them.
 */
export async function capturingLogs<T>(run: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines: string[] = [];
  const spies = (["log", "info", "warn", "error", "debug"] as const).map((method) =>
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    }),
  );
  try {
    return { result: await run(), lines };
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
}

/** Proves no request ended in the error path meant for bugs (a 500 would also be caught by status). */
export function expectNoUnexpectedErrors(lines: readonly string[]): void {
  expect(lines.filter((line) => line.includes("unexpected error"))).toEqual([]);
}
