/**
 * The bridge validates with `zod/mini`, whose functional API lets the
 * bundler keep only the validators the schemas name (the classic `z`
 * namespace hangs every method and all 64 locales off each schema, and was
 * three quarters of the Worker's bundle). Every schema module imports
 * `zod/mini` as a namespace itself and this module for its side effect:
 * re-exporting the namespace from here would make the bundler keep all of
 * it, locales included. Mini ships no locale, so English is installed
 * here: the default messages of a check without its own `error` (a dead
 * letter's reason, a log line) stay readable.
 */
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";

z.config(en());

/** `schema` then `fn` on its output: classic zod's `.transform()`. */
export const mapped = <S extends z.ZodMiniType, O>(
  schema: S,
  fn: (value: z.output<S>, ctx: z.core.ParsePayload) => O,
) => z.pipe(schema, z.transform(fn));
