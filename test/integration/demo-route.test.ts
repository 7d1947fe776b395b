/**
 * The /demo page's credential routes (src/routes/demo.ts, docs/web.md): served only when DEMO_CREDENTIALS
 * is set and CPS_ORIGIN is loopback; 404 like any unknown path otherwise; and with DEMO_CREDENTIALS
 * set on a public origin the Worker refuses to serve at all (src/config.ts `deploymentProblem`), as
 * for a development switch. Real app in workerd; each case runs on its own copy of the test bindings.
 */
import { createExecutionContext, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";

const CHAIN = "-----BEGIN CERTIFICATE-----\nTUlJ\n-----END CERTIFICATE-----\n";
const DEMO = JSON.stringify({
  rootPem: CHAIN,
  parties: {
    alice: { subject: "CN=Alice", numbers: ["+11115551111"], chainPem: CHAIN, privateKeyPkcs8: "AAAA" },
  },
});

const send = (path: string, bindings: Env, init?: RequestInit) =>
  app.fetch(new Request(`${TEST_CPS_ORIGIN}${path}`, init), bindings, createExecutionContext());

const withDemo = (overrides: Record<string, string> = {}) =>
  ({ ...env, DEMO_CREDENTIALS: DEMO, ...overrides }) as Env;

async function expectProblem(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  expect((await res.json<{ code: string }>()).code).toBe(code);
}

describe("GET /demo/credentials and /demo/certs/{name}.pem", () => {
  it("answer 404 NOT_FOUND without DEMO_CREDENTIALS (every deployed CPS)", async () => {
    await expectProblem(await send("/demo/credentials", env), 404, "NOT_FOUND");
    await expectProblem(await send("/demo/certs/alice.pem", env), 404, "NOT_FOUND");
  });

  it("serve the demo parties, each with an x5u on this origin, when local; never cached", async () => {
    const res = await send("/demo/credentials", withDemo());
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const body = await res.json<{
      testOnly: boolean;
      cps: string;
      parties: Record<string, { x5u: string }>;
    }>();
    expect(body.testOnly).toBe(true);
    expect(body.cps).toBe(TEST_CPS_ORIGIN);
    expect(body.parties.alice?.x5u).toBe(`${TEST_CPS_ORIGIN}/demo/certs/alice.pem`);
    const pem = await send("/demo/certs/alice.pem", withDemo());
    expect(pem.status).toBe(200);
    expect(pem.headers.get("Content-Type")).toBe("application/pem-certificate-chain");
    expect(await pem.text()).toBe(CHAIN);
  });

  it("name only the parties listed: inherited names, odd names and other files are 404", async () => {
    for (const file of [
      "bob.pem",
      "constructor.pem",
      "__proto__.pem",
      "alice",
      "alice.pem.pem",
      "ALICE.pem",
    ]) {
      await expectProblem(await send(`/demo/certs/${file}`, withDemo()), 404, "NOT_FOUND");
    }
  });

  it("answer other methods with 405 and Allow", async () => {
    const res = await send("/demo/credentials", withDemo(), { method: "POST" });
    await expectProblem(res, 405, "METHOD_NOT_ALLOWED");
    expect(res.headers.get("Allow")).toMatch(/GET/);
  });

  it("a public origin with DEMO_CREDENTIALS set: the Worker refuses every request (503), the demo included", async () => {
    const bindings = withDemo({ CPS_ORIGIN: "https://cps.example.com", ALLOW_UNTOKENED_STORES: "false" });
    await expectProblem(await send("/health", bindings), 503, "MISCONFIGURED");
    await expectProblem(await send("/demo/credentials", bindings), 503, "MISCONFIGURED");
    // Control: the same public origin without it serves.
    const ok = await send("/health", { ...bindings, DEMO_CREDENTIALS: "" } as Env);
    expect(ok.status).toBe(200);
  });
});
