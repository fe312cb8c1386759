/** Who the failed-credential limit counts as one client: an IPv4 address, or an IPv6 address's /64. */
import { describe, expect, it } from "vitest";
import { clientKey } from "../../../src/admin/limits.ts";

describe("the limit's client key", () => {
  it("keeps an IPv4 address as it is", () => {
    expect(clientKey("203.0.113.7")).toBe("203.0.113.7");
  });

  it("keys every address of an IPv6 /64 alike, however it is written", () => {
    const keys = [
      "2001:db8:85a3:42::1",
      "2001:0db8:85a3:0042:ffff:ffff:ffff:ffff",
      "2001:DB8:85A3:42:1234::",
      "2001:db8:85a3:42:0:0:0:1",
    ].map(clientKey);
    expect(new Set(keys)).toEqual(new Set(["2001:db8:85a3:42::/64"]));
    expect(clientKey("2001:db8:85a3:43::1")).toBe("2001:db8:85a3:43::/64");
    expect(clientKey("::1")).toBe("0:0:0:0::/64");
  });

  it("reads an IPv4-mapped IPv6 address as the IPv4 one, and names a missing address", () => {
    expect(clientKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(clientKey(undefined)).toBe("unknown");
    expect(clientKey("not:an::address::")).toBe("not:an::address::");
    expect(clientKey("1:2:3:4:5:6:7:8:9::")).toBe("1:2:3:4:5:6:7:8:9::");
  });
});
