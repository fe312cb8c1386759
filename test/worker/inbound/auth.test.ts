/** The webhook's token: VERO_WEBHOOK_TOKEN in the URL, either value of a rotation, and no HTTP challenge. */
import { describe, expect, it } from "vitest";
import { challenge, expectNothingSent } from "../helpers/auth.ts";
import { callWorker, expectJsonError, isolatedEnv, segment } from "../helpers/env.ts";

const webhook = JSON.stringify({
  type: "opened",
  opened_at: 1435016238,
  user: { id: 123, email: "steve@getvero.com" },
});

describe("POST /vero/webhook", () => {
  it("returns 401 when the token is missing, and sends nothing", async () => {
    const { env, writeKey, veroToken } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/vero/webhook", { method: "POST", body: webhook }),
      env,
    );
    expect((await expectJsonError(response, 401)).error.message).toMatch(/missing token/);
    await expectNothingSent(writeKey, veroToken);
  });

  it("returns 401 when the token is wrong, and sends nothing", async () => {
    const { env, writeKey, veroToken } = await isolatedEnv();
    const response = await callWorker(
      new Request("http://bridge/vero/webhook?token=not-the-token", { method: "POST", body: webhook }),
      env,
    );
    expect((await expectJsonError(response, 401)).error.message).toBe("wrong token");
    await expectNothingSent(writeKey, veroToken);
  });

  it("accepts either value of a token under rotation, and no third", async () => {
    const { env, writeKey } = await isolatedEnv({
      VERO_WEBHOOK_TOKEN: "old-token-0123456789abcdef0123456, new-token-0123456789abcdef0123456",
    });
    for (const token of ["old-token-0123456789abcdef0123456", "new-token-0123456789abcdef0123456"]) {
      const response = await callWorker(
        new Request(`http://bridge/vero/webhook?token=${token}`, { method: "POST", body: webhook }),
        env,
      );
      expect(response.status, await response.text()).toBe(200);
    }
    expect(await segment.accepted(writeKey)).toHaveLength(2);
    const third = await callWorker(
      new Request("http://bridge/vero/webhook?token=other", { method: "POST", body: webhook }),
      env,
    );
    await expectJsonError(third, 401);
  });
});

describe("WWW-Authenticate on a 401", () => {
  const post = (path: string) => new Request(`http://bridge${path}`, { method: "POST", body: webhook });

  it("is absent on the webhook, whose token rides in the URL, which no HTTP scheme describes", async () => {
    expect(await challenge(post("/vero/webhook"))).toBeNull();
    expect(await challenge(post("/vero/webhook?token=not-the-token"))).toBeNull();
  });
});
