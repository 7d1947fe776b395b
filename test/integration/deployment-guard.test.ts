/**
 * What the Worker refuses to serve with (src/config.ts `deploymentProblem`, src/http/middleware.ts
 * `refuseMisconfigured`): no CPS_ORIGIN, a malformed one, or a development switch with an origin that
 * is not loopback. Every request then answers 503 MISCONFIGURED, and the reason is logged once.
 * Real app in workerd; each case runs on its own copy of the test bindings.
 */
import { createExecutionContext, env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { app } from "../../src/app.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { sealedFor, storeRequest } from "../helpers/cps.js";
import { signedKeyBody } from "../helpers/key-records.js";
import { bearerFor, loadTestPki } from "../helpers/pki.js";

const pki = loadTestPki(env.TEST_PKI);
const EVIL = "https://evil.example";
const PUBLIC = "https://cps.example.com";

/** A production-like copy of the test bindings: no development switch, `overrides` on top. */
function production(overrides: Record<string, string>): Env {
  return { ...env, ALLOW_UNTOKENED_STORES: "false", ALLOW_LOOPBACK_X5U: "false", ...overrides } as Env;
}

const send = (req: Request, bindings: Env) => app.fetch(req, bindings, createExecutionContext());

async function putKey(base: string, bindings: Env, audience: string) {
  const { publicKey } = await generateRecipientKeyPair();
  const cred = await pki.credential("valid");
  return send(
    new Request(`${base}/keys/12155551212`, {
      method: "PUT",
      headers: {
        "Content-Type": "application/json",
        Authorization: await bearerFor(cred, "keys:put", { audience }),
      },
      body: JSON.stringify(await signedKeyBody(cred, publicKey, { blocks: ["12155551212"], label: "x" })),
    }),
    bindings,
  );
}

async function expectMisconfigured(res: Response) {
  expect(res.status).toBe(503);
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  expect((await res.json<{ code: string }>()).code).toBe("MISCONFIGURED");
}

let logged: string[] = [];
function captureLog() {
  logged = [];
  for (const level of ["log", "warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      logged.push(args.map(String).join(" "));
    });
  }
}
afterEach(() => vi.restoreAllMocks());

describe("adversary #11: the Host header must not set the token audience or the discovery origin", () => {
  it("without CPS_ORIGIN every request is 503 MISCONFIGURED, logged once, whatever the Host says", async () => {
    const bindings = production({ CPS_ORIGIN: "", SERVED_PREFIXES: "1202" });
    captureLog();
    await expectMisconfigured(await send(new Request(`${EVIL}/health`), bindings));
    // The attack: a discovery answer naming the attacker's origin as this number's CPS ...
    await expectMisconfigured(
      await send(new Request(`${EVIL}/.well-known/stir-oob?tn=12025550123`), bindings),
    );
    // ... and a credential token minted for the attacker's origin accepted as addressed to us.
    await expectMisconfigured(await putKey(EVIL, bindings, EVIL));
    const reports = logged.filter((l) => l.includes("MISCONFIGURED"));
    expect(reports).toHaveLength(1);
    expect(reports[0]).toContain("CPS_ORIGIN");
  });

  it.each([
    ["unset", ""],
    ["too short", "only-31-characters-of-secret-xx"],
  ])(
    "a DECOY_SECRET %s is refused the same way (503 MISCONFIGURED, the reason logged)",
    async (_name, secret) => {
      captureLog();
      const bindings = production({ CPS_ORIGIN: PUBLIC, DECOY_SECRET: secret });
      await expectMisconfigured(await send(new Request(`${PUBLIC}/cps/12025550123/ppts`), bindings));
      expect(logged.some((l) => l.includes("DECOY_SECRET"))).toBe(true);
    },
  );

  it.each([
    ["not a URL", "cps.example.com"],
    ["with a path", "https://cps.example.com/cps"],
    ["plain http to a public host", "http://cps.example.com"],
    ["with a query", "https://cps.example.com/?x=1"],
  ])("a CPS_ORIGIN %s is refused too (%s)", async (_name, origin) => {
    await expectMisconfigured(
      await send(new Request(`${PUBLIC}/health`), production({ CPS_ORIGIN: origin })),
    );
  });

  it("with CPS_ORIGIN set, a token for the Host's origin is refused and discovery names CPS_ORIGIN", async () => {
    const bindings = production({ CPS_ORIGIN: `${PUBLIC}/`, SERVED_PREFIXES: "1202, 1215" });
    const forged = await putKey(EVIL, bindings, EVIL);
    expect(forged.status).toBe(401);
    expect((await forged.json<{ code: string }>()).code).toBe("AUTH_AUDIENCE");
    const res = await send(new Request(`${EVIL}/.well-known/stir-oob?tn=12025550123`), bindings);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ cps: PUBLIC, keys: `${PUBLIC}/keys` });
    // Control: a token for CPS_ORIGIN (trailing slash normalised away) is accepted from any Host.
    expect((await putKey(EVIL, bindings, PUBLIC)).status).toBe(201);
  });
});

describe("adversary #12: development switches are refused outside local development", () => {
  it.each([
    ["ALLOW_UNTOKENED_STORES", { ALLOW_UNTOKENED_STORES: "true" }],
    ["ALLOW_LOOPBACK_X5U", { ALLOW_LOOPBACK_X5U: "true" }],
  ])("%s with a public CPS_ORIGIN: 503 MISCONFIGURED, and no untokened store", async (name, on) => {
    const bindings = production({ CPS_ORIGIN: PUBLIC, ...on });
    captureLog();
    const { text } = await sealedFor("12025550123");
    await expectMisconfigured(await send(storeRequest(PUBLIC, "12025550123", text), bindings));
    await expectMisconfigured(await send(new Request(`${PUBLIC}/health`), bindings));
    const reports = logged.filter((l) => l.includes("MISCONFIGURED"));
    expect(reports).toHaveLength(1);
    expect(reports[0]).toContain(name);
  });

  it.each([["http://127.0.0.1:8787"], ["http://localhost:40123"], ["http://[::1]:8787"]])(
    "a loopback CPS_ORIGIN (%s) is local development: the switches are honoured",
    async (origin) => {
      const bindings = production({ CPS_ORIGIN: origin, ALLOW_UNTOKENED_STORES: "true" });
      const { text } = await sealedFor("12025550123");
      expect((await send(storeRequest(origin, "12025550123", text), bindings)).status).toBe(201);
    },
  );

  it("without a switch, a public CPS_ORIGIN serves and an untokened store is refused (401 TOKEN_MISSING)", async () => {
    const bindings = production({ CPS_ORIGIN: PUBLIC });
    expect((await send(new Request(`${PUBLIC}/health`), bindings)).status).toBe(200);
    const { text } = await sealedFor("12025550123");
    const res = await send(storeRequest(PUBLIC, "12025550123", text), bindings);
    expect(res.status).toBe(401);
    expect((await res.json<{ code: string }>()).code).toBe("TOKEN_MISSING");
  });

  it("the bench baseline route is not part of the CPS Worker", async () => {
    const bindings = production({ CPS_ORIGIN: PUBLIC, BENCH_BASELINE: "true" });
    const res = await send(
      new Request(`${PUBLIC}/_bench/baseline/k`, { method: "POST", body: "x" }),
      bindings,
    );
    expect(res.status).toBe(404);
    expect("BASELINE_STORE" in env).toBe(false);
  });
});
