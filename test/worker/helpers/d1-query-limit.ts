/**
 * A D1 double that counts the queries of one invocation and refuses past a
 * limit, as production does (Workers Free: 50 per invocation; Paid: 1,000).
 * Miniflare's D1 has no such limit. Each statement of a `batch()` counts.
 */
export interface CountingD1 {
  db: D1Database;
  count(): number;
}

export function queryLimitedD1(real: D1Database, limit: number): CountingD1 {
  let count = 0;
  const unwrap = new WeakMap<object, D1PreparedStatement>();
  const tick = (by: number) => {
    count += by;
    if (count > limit) throw new Error(`D1 double: ${count} queries in one invocation, over the limit of ${limit}`);
  };
  const wrap = (statement: D1PreparedStatement): D1PreparedStatement => {
    const proxy = new Proxy(statement, {
      get(target, prop) {
        if (prop === "bind") return (...values: unknown[]) => wrap(target.bind(...values));
        if (prop === "first" || prop === "all" || prop === "run" || prop === "raw") {
          const method = Reflect.get(target, prop) as (...args: unknown[]) => unknown;
          return (...args: unknown[]) => {
            tick(1);
            return method.apply(target, args);
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    unwrap.set(proxy, statement);
    return proxy;
  };
  const db = new Proxy(real, {
    get(target, prop) {
      if (prop === "prepare") return (query: string) => wrap(target.prepare(query));
      if (prop === "batch")
        return (statements: D1PreparedStatement[]) => {
          tick(statements.length);
          return target.batch(statements.map((statement) => unwrap.get(statement) ?? statement));
        };
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { db, count: () => count };
}
