/**
 * The size budget, checked on what `wrangler deploy` would upload: the
 * bundle is what every cold start parses, so it grows only with a feature
 * (bench/README.md has each step and its measurements). It catches the
 * real hazard: one careless import (the classic `zod` namespace, or
 * `z.core` from `zod/mini`) pulls every zod locale back in and doubles the
 * bundle without a word.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { WRANGLER_BIN } from "../../dev/bridge.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUDGET_BYTES = 108 * 1024;

describe("the deploy bundle", () => {
  it("stays within 108 KiB gzip, and carries none of zod's locales but English", async () => {
    const outdir = await mkdtemp(join(tmpdir(), "bundle-size-"));
    try {
      await promisify(execFile)(process.execPath, [WRANGLER_BIN, "deploy", "--dry-run", "--outdir", outdir], {
        cwd: ROOT,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
        maxBuffer: 16 * 1024 * 1024,
      });
      const entry = (await readdir(outdir)).find((name) => name.endsWith(".js"));
      const code = await readFile(join(outdir, entry ?? "index.js"));
      expect(gzipSync(code).length).toBeLessThanOrEqual(BUDGET_BYTES);
      // A German message is the tell-tale of the whole locale set (en is installed on purpose).
      expect(code.toString("utf8")).not.toContain("Ungültige Eingabe");
    } finally {
      await rm(outdir, { recursive: true, force: true });
    }
  }, 60_000);
});
