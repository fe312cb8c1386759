// What test/global-setup.ts provides to every test project (origins of the running stand-ins).
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    segmentOrigin: string;
    veroOrigin: string;
  }
}
