/**
 * The payloads every benchmark sends: the test fixtures (test/fixtures/), the
 * same public samples the tests use, in a fixed mix so that runs compare.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";

const FIXTURES = join(import.meta.dirname, "..", "test", "fixtures");

// Every Segment sample, and the Vero webhooks most sent: a send, a click, a bounce, user changes.
const MIX = {
  vero: ["bounced", "clicked", "unsubscribed", "user_created", "user_updated"],
  segment: ["alias", "group", "identify", "identify_with_tags", "track", "unsubscribe"],
} as const;

export interface Fixture {
  name: string;
  payload: Record<string, unknown>;
}

async function load(folder: keyof typeof MIX): Promise<Fixture[]> {
  return Promise.all(
    MIX[folder].map(async (name) => ({
      name,
      payload: JSON.parse(await readFile(join(FIXTURES, folder, `${name}.json`), "utf8")) as Record<string, unknown>,
    })),
  );
}

export const veroFixtures = () => load("vero");
export const segmentFixtures = () => load("segment");
