/**
 * Every `wrangler dev` that dev/bridge.ts starts, and the workerd under it, ends with the process
 * that started it: by stop(), and when that process dies without a chance to clean up (SIGKILL,
 * an interrupted test run).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBridge } from "../../dev/bridge.ts";

let dir: string;
let config: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "bridge-cleanup-"));
  await writeFile(join(dir, "index.js"), 'export default { fetch: () => new Response("ok") };\n');
  config = join(dir, "wrangler.toml");
  await writeFile(config, 'name = "cleanup"\nmain = "index.js"\ncompatibility_date = "2026-11-01"\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The processes in process group `group`, zombies excluded. */
function members(group: number): number[] {
  try {
    return execFileSync("ps", ["-o", "pid=,stat=", "-g", String(group)], { encoding: "utf8" })
      .trim()
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.trim().split(/\s+/)[1]?.startsWith("Z"))
      .map((line) => Number(line.trim().split(/\s+/)[0]));
  } catch {
    return []; // ps exits 1 when it lists nothing
  }
}

/** Resolves once group `group` has no live process left; the test's timeout bounds the wait. */
async function groupGone(group: number): Promise<void> {
  while (members(group).length > 0) await new Promise((resolve) => setTimeout(resolve, 100));
}

describe("the processes a bridge starts", () => {
  it("are all gone after stop(), workerd included", async () => {
    const bridge = await startBridge({ vars: {}, config, readyPath: "/", stdio: "ignore" });
    const group = bridge.process.pid as number;
    expect(members(group).length).toBeGreaterThan(1);
    await bridge.stop();
    await groupGone(group);
    expect(members(group)).toEqual([]);
  }, 120_000);

  it("are all gone when the process that started them is killed outright", async () => {
    const script = [
      `import { startBridge } from ${JSON.stringify(new URL("../../dev/bridge.ts", import.meta.url).href)};`,
      `const bridge = await startBridge({ vars: {}, config: ${JSON.stringify(config)}, readyPath: "/", stdio: "ignore" });`,
      "console.log(bridge.process.pid);",
      "setInterval(() => {}, 60_000);",
    ].join("\n");
    const parent = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: parent.stdout }).once("line", resolve);
      parent.once("exit", (code) => reject(new Error(`the parent exited with ${code} before starting the bridge`)));
    });
    const group = Number(line);
    expect(members(group).length).toBeGreaterThan(1);
    parent.kill("SIGKILL");
    await groupGone(group);
    expect(members(group)).toEqual([]);
  }, 120_000);
});
