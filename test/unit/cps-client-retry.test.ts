/**
 * The client's store retry policy (docs/tokens.md "Retried stores"): which failures send the same
 * request again and which are final. The CPS side of it (one id, one token use) is tested against
 * real Durable Objects in test/integration-tokens/spend.test.ts and over a real `wrangler dev` with
 * a lost answer in test/e2e/faults.test.ts; here a scripted fetch stands in for the network, since
 * the point is the client's decisions, and every request it sends is recorded.
 */
import { describe, expect, it } from "vitest";
import { CpsClient, CpsUnavailableError } from "../../src/client/cps-client.js";
import { CpsError } from "../../src/errors.js";
import { canonicalTn } from "../../src/stir/tn.js";

type Outcome = number | "network" | "busy";
const TN = canonicalTn("12025550100");
const CREATED = { id: "0123456789abcdef0123456789abcdef", expires: "2026-11-23T00:01:00.000Z" };

function scripted(outcomes: Outcome[]) {
  const sent: { body: string; headers: Record<string, string> }[] = [];
  const fetch = async (_url: string | URL | Request, init?: RequestInit) => {
    sent.push({
      body: String(init?.body),
      headers: Object.fromEntries(new Headers(init?.headers).entries()),
    });
    const next = outcomes.shift() ?? 500;
    if (next === "network") throw new TypeError("fetch failed");
    if (next === "busy") {
      return new Response(JSON.stringify({ code: "UNAVAILABLE", title: "Busy" }), {
        status: 503,
        headers: { "content-type": "application/problem+json", "retry-after": "1" },
      });
    }
    if (next === 201) {
      return new Response(JSON.stringify(CREATED), {
        status: 201,
        headers: { "content-type": "application/json", location: `/cps/${TN}/ppts/${CREATED.id}` },
      });
    }
    return new Response(JSON.stringify({ code: next >= 500 ? "INTERNAL" : "TOKEN_SPENT", title: "x" }), {
      status: next,
      headers: { "content-type": "application/problem+json" },
    });
  };
  const client = new CpsClient({ baseUrl: "https://cps.example", fetch, retryDelayMs: 1 });
  return { client, sent };
}

describe("CpsClient.store retries a lost answer with the identical request", () => {
  it("waits the Retry-After a busy CPS (503 UNAVAILABLE) asks for, not its own 1 ms backoff", async () => {
    const { client, sent } = scripted(["busy", 201]);
    const t0 = performance.now();
    const stored = await client.store(TN, "blobtext");
    expect(stored.attempts).toBe(2);
    expect(sent).toHaveLength(2);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(990);
  });

  const retried: [string, Outcome[], number][] = [
    ["answer lost in the network once", ["network", 201], 2],
    ["503 then 201", [503, 201], 2],
    ["502, network, then 201 (two retries, the default)", [502, "network", 201], 3],
    ["first answer kept", [201], 1],
  ];
  it.each(retried)("%s", async (_name, outcomes, attempts) => {
    const { client, sent } = scripted(outcomes);
    const stored = await client.store(TN, "blobtext", { "CPS-Token": "t", "CPS-Token-Signature": "s" });
    expect(stored.attempts).toBe(attempts);
    expect(stored.id).toBe(CREATED.id);
    expect(sent).toHaveLength(attempts);
    // The same body and the same token headers each time: the CPS counts it as one store.
    for (const s of sent) expect(s).toEqual(sent[0]);
    expect(sent[0]?.headers["cps-token-signature"]).toBe("s");
  });

  const final: [string, Outcome[], number, string][] = [
    ["a 4xx is final (429 TOKEN_SPENT)", [429, 201], 1, "TOKEN_SPENT"],
    ["a 400 is final", [400, 201], 1, "TOKEN_SPENT"],
    ["gives up after the retries", [503, 503, 503, 201], 3, "INTERNAL"],
  ];
  it.each(final)("%s", async (_name, outcomes, requests, code) => {
    const { client, sent } = scripted(outcomes);
    const err = await client.store(TN, "blobtext").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CpsError);
    expect((err as CpsError).code).toBe(code);
    expect(sent).toHaveLength(requests);
  });

  it("storeRetries: 0 turns retrying off; the network failure surfaces as CpsUnavailableError", async () => {
    const sent: unknown[] = [];
    const client = new CpsClient({
      baseUrl: "https://cps.example",
      storeRetries: 0,
      fetch: async () => {
        sent.push(1);
        throw new TypeError("fetch failed");
      },
    });
    await expect(client.store(TN, "blobtext")).rejects.toBeInstanceOf(CpsUnavailableError);
    expect(sent).toHaveLength(1);
  });
});
