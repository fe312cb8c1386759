/** The JSON admin routes' challenge on a 401; their token's refusals and rotation are in api.test.ts. */
import { describe, expect, it } from "vitest";
import { challenge } from "../helpers/auth.ts";

describe("WWW-Authenticate on a 401", () => {
  it("offers Bearer on the JSON admin routes", async () => {
    const bearer = 'Bearer realm="vero-segment-bridge"';
    expect(await challenge(new Request("http://bridge/admin/dead-letters"))).toBe(bearer);
    expect(
      await challenge(new Request("http://bridge/admin/counters", { headers: { Authorization: "Bearer wrong" } })),
    ).toBe(bearer);
  });
});
