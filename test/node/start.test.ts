/**
 * `npm start` (dev/start.ts) comes up when its ports are taken: 8787 (wrangler's default, so often another
 * `wrangler dev`) and the stand-ins' 8790 to 8792 held by other servers that answer `/health` with something
 * else. It takes free ports, says so, and reaches its own bridge, not the server that holds 8787.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const START = fileURLToPath(new URL("../../dev/start.ts", import.meta.url));
const DEFAULT_PORTS = [8787, 8790, 8791, 8792];

const holders: Server[] = [];
let child: ChildProcess | undefined;
const lines: string[] = [];

/**
 * Holds `port` with a server that answers every request with plain text, as another program would. A port
 * another program holds already (the machine is shared) is just as taken, and is left to it.
 */
function hold(port: number): Promise<void> {
  const server = createServer((_req, res) => res.end("not the bridge"));
  return new Promise((resolve) => {
    server.once("error", () => resolve());
    server.listen(port, "127.0.0.1", () => {
      holders.push(server);
      resolve();
    });
  });
}

beforeAll(async () => {
  for (const port of DEFAULT_PORTS) await hold(port);
}, 10_000);

afterAll(async () => {
  if (child?.pid !== undefined && child.exitCode === null) {
    const exited = new Promise((resolve) => child?.once("exit", resolve));
    process.kill(-child.pid, "SIGTERM");
    await exited;
  }
  await Promise.all(holders.map((server) => new Promise((resolve) => server.close(resolve))));
}, 30_000);

/** Resolves with the first line matching `pattern`, or rejects when start.ts exits first. */
function lineMatching(pattern: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      for (const line of lines) {
        const match = line.match(pattern);
        if (match) return resolve(match);
      }
      if (child?.exitCode !== null) return reject(new Error(`npm start exited:\n${lines.join("\n")}`));
      setTimeout(check, 200);
    };
    check();
  });
}

describe("npm start with its ports taken", () => {
  it("takes free ports, says which, and serves its own bridge", async () => {
    child = spawn(process.execPath, [START], {
      env: {
        ...process.env,
        SANDBOX_TRAFFIC: "0",
        PORT: "",
        SEGMENT_STAND_IN_PORT: "",
        VERO_STAND_IN_PORT: "",
        ALERT_STAND_IN_PORT: "",
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    for (const stream of [child.stdout, child.stderr])
      if (stream) createInterface({ input: stream }).on("line", (line) => lines.push(line));

    const ready = await lineMatching(/^Ready on (http:\/\/127\.0\.0\.1:(\d+))$/);
    const [, url, port] = ready;
    expect(Number(port)).not.toBe(8787);
    expect(lines).toContain(`Port 8787 is taken: the bridge listens on ${port} instead`);
    for (const [name, standInPort] of [
      ["Segment", 8790],
      ["Vero", 8791],
      ["alert receiver", 8792],
    ] as const)
      expect(lines.join("\n")).toMatch(
        new RegExp(`Port ${standInPort} is taken: the ${name} stand-in listens on \\d+`),
      );

    const health = (await (await fetch(`${url}/health`)).json()) as { inbound: boolean; outbound: boolean };
    expect(health).toMatchObject({ status: "ok", inbound: true, outbound: true, instance: expect.any(String) });
    expect(await (await fetch("http://127.0.0.1:8787/health")).text()).not.toContain(
      (health as { instance?: string }).instance,
    );
  }, 120_000);
});
