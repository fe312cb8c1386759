/**
 * Segment's Destination Filters, in the form its Public API lists them
 * (`GET /destinations/{id}/filters`: title, `if` in FQL, actions, enabled),
 * compiled once per isolate and applied to outbound events before mapping.
 *
 * Why not Segment's own libraries: `@segment/tsub` evaluates FQL only in a
 * compiled form that Segment's servers produce (it has no FQL parser), and
 * with its dependencies it adds about 8.6 KiB gzip, more than the bundle
 * budget has left; `@segment/fql-ts` (the lexer `@segment/destination-subscriptions`
 * parses with) is published without a licence, and that parser understands
 * only the subset Actions subscriptions use. So this file holds the smallest
 * evaluator of the FQL forms Segment documents for destination filters,
 * following tsub's semantics: strict types (`"5" = 5` is false, numeric
 * comparisons need two numbers), `contains` and `match` on strings only, a
 * glob that lets `*` cross `/`; and, as Segment's servers do, a missing
 * field reads as `null`, so `properties.x != null` is an exists check.
 *
 * Pure: no I/O; `shared/` because settings.ts validates the setting with it.
 */
import { isRecord } from "./json.ts";

// ---- FQL -------------------------------------------------------------------

type Literal = string | number | boolean | null;
type Comparison = "=" | "!=" | "<" | "<=" | ">" | ">=" | "in";
/** Segment's FQL functions, with how many arguments each takes. */
const FUNCTIONS = {
  contains: 2,
  match: 2,
  length: 1,
  lowercase: 1,
  uppercase: 1,
  snakecase: 1,
  kebabcase: 1,
  titlecase: 1,
  typeof: 1,
  bool: 1,
  string: 1,
  number: 1,
} as const;
type FunctionName = keyof typeof FUNCTIONS;

export type Fql =
  | { kind: "value"; value: Literal }
  | { kind: "list"; items: Fql[] }
  | { kind: "path"; path: string[] }
  | { kind: "not"; arg: Fql }
  | { kind: "and" | "or"; args: Fql[] }
  | { kind: "compare"; op: Comparison; left: Fql; right: Fql }
  | { kind: "call"; name: FunctionName; args: Fql[] };

type Token =
  | { t: "str"; v: string; at: number }
  | { t: "num"; v: number; at: number }
  | { t: "word"; v: string; at: number }
  | { t: "sym"; v: string; at: number }
  | { t: "end"; at: number };

class FqlError extends Error {}

function lex(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const ch = source[i] as string;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const at = i + 1;
    // Segment's examples quote with either.
    if (ch === '"' || ch === "'") {
      let value = "";
      i++;
      while (i < source.length && source[i] !== ch) {
        // `\` escapes the quote and itself; before anything else it stays, for match()'s own escapes (`\*`).
        if (source[i] === "\\" && (source[i + 1] === ch || source[i + 1] === "\\")) i++;
        value += source[i];
        i++;
      }
      if (i >= source.length) throw new FqlError(`unterminated string at column ${at}`);
      i++;
      tokens.push({ t: "str", v: value, at });
      continue;
    }
    const number = /^-?\d+(\.\d+)?(e[+-]?\d+)?/i.exec(source.slice(i));
    if (number) {
      tokens.push({ t: "num", v: Number(number[0]), at });
      i += number[0].length;
      continue;
    }
    const symbol = /^(!=|<=|>=|=|<|>|!|\(|\)|,|\[|\])/.exec(source.slice(i));
    if (symbol) {
      tokens.push({ t: "sym", v: symbol[0], at });
      i += symbol[0].length;
      continue;
    }
    // A path: names joined by dots; a backslash escapes a character FQL would read otherwise (`properties.a\-b`).
    let word = "";
    while (i < source.length && (/[\w$.@-]/.test(source[i] as string) || source[i] === "\\")) {
      if (source[i] === "\\") {
        if (i + 1 >= source.length) break;
        word += `\\${source[i + 1]}`;
        i += 2;
        continue;
      }
      word += source[i];
      i++;
    }
    if (word === "") throw new FqlError(`unexpected "${ch}" at column ${at}`);
    tokens.push({ t: "word", v: word, at });
  }
  tokens.push({ t: "end", at: source.length + 1 });
  return tokens;
}

/** Splits a path on the dots that are not escaped, and unescapes each name. */
function splitPath(word: string): string[] {
  const names: string[] = [];
  let current = "";
  for (let i = 0; i < word.length; i++) {
    const ch = word[i] as string;
    if (ch === "\\") current += word[++i] ?? "";
    else if (ch === ".") {
      names.push(current);
      current = "";
    } else current += ch;
  }
  names.push(current);
  return names;
}

const describeToken = (token: Token) =>
  token.t === "end" ? "the end" : `"${token.t === "str" ? token.v : String(token.v)}" at column ${token.at}`;

/** Parses FQL: `or` binds loosest, then `and`, then `!`, then the comparisons. */
export function parseFql(source: string): Fql {
  const tokens = lex(source);
  let pos = 0;
  const peek = () => tokens[pos] as Token;
  const next = () => tokens[pos++] as Token;
  const isSym = (v: string) => {
    const token = peek();
    return token.t === "sym" && token.v === v;
  };
  const isWord = (v: string) => {
    const token = peek();
    return token.t === "word" && token.v === v;
  };
  const expect = (v: string) => {
    if (!isSym(v)) throw new FqlError(`expected "${v}", found ${describeToken(peek())}`);
    next();
  };

  const list = (kind: "and" | "or", operand: () => Fql): Fql => {
    const args = [operand()];
    while (isWord(kind)) {
      next();
      args.push(operand());
    }
    return args.length === 1 ? (args[0] as Fql) : { kind, args };
  };
  const or = (): Fql => list("or", and);
  const and = (): Fql => list("and", unary);
  const unary = (): Fql => {
    if (isSym("!")) {
      next();
      return { kind: "not", arg: unary() };
    }
    return comparison();
  };
  const comparison = (): Fql => {
    const left = primary();
    const token = peek();
    if (token.t === "sym" && ["=", "!=", "<", "<=", ">", ">="].includes(token.v)) {
      next();
      return { kind: "compare", op: token.v as Comparison, left, right: primary() };
    }
    if (isWord("in")) {
      next();
      return { kind: "compare", op: "in", left, right: primary() };
    }
    return left;
  };
  const primary = (): Fql => {
    const token = next();
    if (token.t === "sym" && token.v === "(") {
      const inner = or();
      expect(")");
      return inner;
    }
    if (token.t === "str" || token.t === "num") return { kind: "value", value: token.v };
    if (token.t === "sym" && token.v === "[") {
      const items: Fql[] = [];
      while (!isSym("]")) {
        if (items.length > 0) expect(",");
        items.push(primary());
      }
      next();
      return { kind: "list", items };
    }
    if (token.t === "word") {
      if (token.v === "true" || token.v === "false") return { kind: "value", value: token.v === "true" };
      if (token.v === "null") return { kind: "value", value: null };
      if (token.v === "and" || token.v === "or" || token.v === "in")
        throw new FqlError(`unexpected "${token.v}" at column ${token.at}`);
      if (isSym("(")) {
        if (!Object.hasOwn(FUNCTIONS, token.v))
          throw new FqlError(
            `unknown function ${token.v}() at column ${token.at} (known: ${Object.keys(FUNCTIONS).join(", ")})`,
          );
        const name = token.v as FunctionName;
        next();
        const args = [or()];
        while (isSym(",")) {
          next();
          args.push(or());
        }
        expect(")");
        if (args.length !== FUNCTIONS[name])
          throw new FqlError(`${name}() takes ${FUNCTIONS[name]} argument(s), given ${args.length}`);
        return { kind: "call", name, args };
      }
      return { kind: "path", path: splitPath(token.v) };
    }
    throw new FqlError(`unexpected ${describeToken(token)}`);
  };

  const tree = or();
  if (peek().t !== "end") throw new FqlError(`unexpected ${describeToken(peek())}`);
  return tree;
}

/** The value at `path`, own properties only; absent reads as null, as on Segment's servers. */
export function valueAt(event: unknown, path: readonly string[]): unknown {
  let current: unknown = event;
  for (const name of path) {
    if (typeof current !== "object" || current === null || !Object.hasOwn(current, name)) return null;
    current = (current as Record<string, unknown>)[name];
  }
  return current === undefined ? null : current;
}

/** Segment's glob: `*` any run of characters (`/` included), `?` one, `[...]` a class, `\` escapes. */
function globRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i] as string;
    if (ch === "*") source += ".*";
    else if (ch === "?") source += ".";
    else if (ch === "\\" && i + 1 < glob.length) source += `\\${glob[++i]}`.replace(/^\\(\w)$/, "$1");
    else if (ch === "[" && glob.indexOf("]", i + 2) !== -1) {
      const end = glob.indexOf("]", i + 2);
      const body = glob.slice(i + 1, end).replace(/\\/g, "\\\\");
      source += `[${body}]`;
      i = end;
    } else source += ch.replace(/[$()*+.?[\\\]^{|}/]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "s");
}

/** FQL's names of a value's type. */
const typeName = (value: unknown) =>
  value === null
    ? "null"
    : Array.isArray(value)
      ? "list"
      : typeof value === "boolean"
        ? "bool"
        : typeof value === "string" || typeof value === "number"
          ? typeof value
          : "object";

/** A string function: null, as in Segment's FQL, for anything but a string. */
const onString = (value: unknown, fn: (text: string) => string) => (typeof value === "string" ? fn(value) : null);

function call(name: FunctionName, [first, second]: unknown[]): unknown {
  switch (name) {
    case "contains":
      return typeof first === "string" && typeof second === "string" && first.includes(second);
    case "match":
      return typeof first === "string" && typeof second === "string" && globRegExp(second).test(first);
    case "length":
      // Bytes, as Segment counts a string's length.
      if (typeof first === "string") return new TextEncoder().encode(first).length;
      return first === null ? 0 : Array.isArray(first) ? first.length : Number.NaN;
    case "lowercase":
      return onString(first, (text) => text.toLowerCase());
    case "uppercase":
      return onString(first, (text) => text.toUpperCase());
    case "snakecase":
      return onString(first, (text) => text.replace(/ /g, "_"));
    case "kebabcase":
      return onString(first, (text) => text.replace(/ /g, "-"));
    case "titlecase":
      return onString(first, (text) => text.replace(/(^|\s)(\S)/g, (_, space, letter) => space + letter.toUpperCase()));
    case "typeof":
      return typeName(first);
    case "bool":
      if (typeof first === "string") return first.toLowerCase() === "false" ? false : first !== "" && first !== "0";
      return Array.isArray(first) ? first.length > 0 : typeof first === "number" ? first !== 0 : first === true;
    case "string":
      return first === null ? "" : typeof first === "object" ? JSON.stringify(first) : String(first);
    case "number": {
      const number = typeof first === "string" && first.trim() !== "" ? Number(first) : first;
      return typeof number === "number" && !Number.isNaN(number) ? number : null;
    }
  }
}

function value(node: Fql, event: unknown): unknown {
  switch (node.kind) {
    case "value":
      return node.value;
    case "list":
      return node.items.map((item) => value(item, event));
    case "path":
      return valueAt(event, node.path);
    case "call":
      return call(
        node.name,
        node.args.map((arg) => value(arg, event)),
      );
    default:
      return holds(node, event);
  }
}

const same = (a: unknown, b: unknown) =>
  typeof a === "object" && typeof b === "object" && a !== null && b !== null
    ? JSON.stringify(a) === JSON.stringify(b)
    : a === b;

/** Whether `node` holds for `event`; a lone value holds only when it is `true`. */
export function holds(node: Fql, event: unknown): boolean {
  switch (node.kind) {
    case "not":
      return !holds(node.arg, event);
    case "and":
      return node.args.every((arg) => holds(arg, event));
    case "or":
      return node.args.some((arg) => holds(arg, event));
    case "compare": {
      const left = value(node.left, event);
      const right = value(node.right, event);
      if (node.op === "=") return same(left, right);
      if (node.op === "!=") return !same(left, right);
      if (node.op === "in") return Array.isArray(right) && right.some((item) => same(left, item));
      if (typeof left !== "number" || typeof right !== "number") return false;
      if (node.op === "<") return left < right;
      if (node.op === "<=") return left <= right;
      if (node.op === ">") return left > right;
      return left >= right;
    }
    default:
      return value(node, event) === true;
  }
}

// ---- The setting -----------------------------------------------------------

/** One action as the Public API lists it; `fields` maps an object's path (`properties`, `""` for the top) to its keys. */
type FilterAction =
  | { type: "DROP" }
  /** `percent`: the share kept, 0 to 1; `path`: whose value decides, the same way every time (empty: the messageId). */
  | { type: "SAMPLE"; percent: number; path?: string }
  | { type: "DROP_PROPERTIES"; fields: Record<string, string[]> }
  | { type: "ALLOW_PROPERTIES"; fields: Record<string, string[]> };

const ACTION_TYPES = ["DROP", "SAMPLE", "DROP_PROPERTIES", "ALLOW_PROPERTIES"];
const isStringList = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === "string");

/** The action, or what is wrong with it. Written out rather than a zod union: the bundle has little room left. */
function actionOf(input: unknown): FilterAction | string {
  if (!isRecord(input)) return "must be an object";
  const { type } = input;
  if (typeof type !== "string" || !ACTION_TYPES.includes(type)) return `type must be one of ${ACTION_TYPES.join(", ")}`;
  if (type === "DROP") return { type };
  if (type === "SAMPLE") {
    const { percent, path } = input;
    if (typeof percent !== "number" || !(percent >= 0 && percent <= 1)) return "percent must be a number from 0 to 1";
    if (path !== undefined && path !== null && typeof path !== "string") return "path must be a string";
    return { type, percent, ...(typeof path === "string" ? { path } : {}) };
  }
  const { fields } = input;
  if (!isRecord(fields) || !Object.values(fields).every(isStringList))
    return "fields must map object paths to arrays of keys";
  return { type, fields } as FilterAction;
}

export interface DestinationFilter {
  title: string;
  /** Absent for `if: "all"` and an empty `if`: the filter applies to every event. */
  when?: Fql;
  actions: FilterAction[];
}

export type ParsedFilters = { ok: true; filters: DestinationFilter[] } | { ok: false; error: string };

/**
 * The setting: the filters as a JSON array, or the Public API's list answer
 * (`{ data: { filters } }`) or `{ filters }` pasted whole. Disabled filters
 * are kept out; an invalid one fails the whole setting, naming it.
 */
export function parseDestinationFilters(raw: unknown): ParsedFilters {
  let json = raw;
  if (typeof raw === "string") {
    try {
      json = JSON.parse(raw);
    } catch {
      return { ok: false, error: "is not valid JSON" };
    }
  }
  const listed = isRecord(json) && isRecord(json.data) ? json.data.filters : isRecord(json) ? json.filters : json;
  if (!Array.isArray(listed))
    return { ok: false, error: "must be a JSON array of filters (or the Public API's { data: { filters } })" };
  const filters: DestinationFilter[] = [];
  for (const [index, input] of listed.entries()) {
    const title = isRecord(input) && typeof input.title === "string" ? input.title.trim() : "";
    const name = `filter ${index + 1}${title ? ` ("${title}")` : ""}`;
    const problem = (text: string): ParsedFilters => ({ ok: false, error: `${name}: ${text}` });
    if (!isRecord(input)) return problem("must be an object");
    if (title === "") return problem("title must be a non-empty string");
    if (typeof input.if !== "string") return problem("if must be a string (FQL, or all)");
    if (input.enabled !== undefined && typeof input.enabled !== "boolean") return problem("enabled must be a boolean");
    if (!Array.isArray(input.actions) || input.actions.length === 0)
      return problem("actions must be a non-empty array");
    const actions: FilterAction[] = [];
    for (const [at, raw] of input.actions.entries()) {
      const action = actionOf(raw);
      if (typeof action === "string") return problem(`actions.${at} ${action}`);
      actions.push(action);
    }
    if (input.enabled === false) continue;
    const condition = input.if.trim();
    let when: Fql | undefined;
    if (condition !== "" && condition !== "all") {
      try {
        when = parseFql(condition);
      } catch (error) {
        if (!(error instanceof FqlError)) throw error;
        return problem(`if ${error.message}`);
      }
    }
    filters.push({ title, ...(when ? { when } : {}), actions });
  }
  return { ok: true, filters };
}

// ---- Applying them ---------------------------------------------------------

export type FilterDecision =
  | { kept: true; event: Record<string, unknown>; changedBy: string[] }
  | { kept: false; by: string; action: "SAMPLE" | "DROP" };

/** A value's share in [0, 1): FNV-1a of its JSON, so one messageId always falls on the same side. */
function shareOf(value: unknown): number {
  const text = JSON.stringify(value);
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return (hash >>> 0) / 2 ** 32;
}

function sampledOut(action: Extract<FilterAction, { type: "SAMPLE" }>, event: Record<string, unknown>): boolean {
  if (action.percent >= 1) return false;
  if (action.percent <= 0) return true;
  const decider = valueAt(event, splitPath(action.path || "messageId"));
  // Nothing to decide the same way by: every such event is a fresh draw, as in tsub.
  const share = decider === null ? Math.random() : shareOf(decider);
  return share >= action.percent;
}

function editProperties(event: Record<string, unknown>, targets: Record<string, string[]>, keep: boolean): void {
  for (const [path, keys] of Object.entries(targets)) {
    const found = path === "" ? event : valueAt(event, splitPath(path));
    for (const target of Array.isArray(found) ? found : [found]) {
      if (!isRecord(target)) continue;
      for (const key of Object.keys(target)) if (keys.includes(key) !== keep) delete target[key];
    }
  }
}

/**
 * The filters' decision on one event, in Segment's order: every matching
 * filter's samples, then its drops, then its property drops, then its
 * property allow-lists. Whether a filter matches is judged on the event as
 * it arrived. The event is copied before any property is removed.
 */
export function applyFilters(filters: readonly DestinationFilter[], input: Record<string, unknown>): FilterDecision {
  const matching = filters.filter((filter) => !filter.when || holds(filter.when, input));
  if (matching.length === 0) return { kept: true, event: input, changedBy: [] };
  const of = <T extends FilterAction["type"]>(type: T) =>
    matching.flatMap((filter) =>
      filter.actions.flatMap((action) =>
        action.type === type ? [{ title: filter.title, action: action as Extract<FilterAction, { type: T }> }] : [],
      ),
    );
  for (const { title, action } of of("SAMPLE"))
    if (sampledOut(action, input)) return { kept: false, by: title, action: "SAMPLE" };
  const drop = of("DROP")[0];
  if (drop) return { kept: false, by: drop.title, action: "DROP" };
  const edits = [
    ...of("DROP_PROPERTIES").map((edit) => ({ ...edit, keep: false })),
    ...of("ALLOW_PROPERTIES").map((edit) => ({ ...edit, keep: true })),
  ];
  if (edits.length === 0) return { kept: true, event: input, changedBy: [] };
  const event = structuredClone(input);
  for (const { action, keep } of edits) editProperties(event, action.fields, keep);
  return { kept: true, event, changedBy: [...new Set(edits.map(({ title }) => title))] };
}
