/**
 * The payloads every benchmark sends: copies of the public samples, kept in
 * bench/fixtures/ so a fresh clone needs nothing outside the repository.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

const FIXTURES = join(import.meta.dirname, "fixtures");

export interface Fixture {
  name: string;
  payload: Record<string, unknown>;
}

async function load(folder: string): Promise<Fixture[]> {
  const names = (await readdir(join(FIXTURES, folder))).filter((name) => name.endsWith(".json")).sort();
  return Promise.all(
    names.map(async (name) => ({
      name: name.replace(/\.json$/, ""),
      payload: JSON.parse(await readFile(join(FIXTURES, folder, name), "utf8")) as Record<string, unknown>,
    })),
  );
}

export const veroFixtures = () => load("vero");
export const segmentFixtures = () => load("segment");
