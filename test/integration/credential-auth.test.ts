/**
 * STIR credential authentication middleware (DESIGN.md "STIR credential auth", invariant 5) against
 * the real ReplayGuard Durable Object and the test PKI the Worker trusts.
 */
import { env } from "cloudflare:test";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { requireCredential } from "../../src/http/credential-auth.js";
import { errorToResponse } from "../../src/http/errors.js";
import type { AppEnv } from "../../src/http/types.js";
import { bearerFor, loadTestPki } from "../helpers/pki.js";

const pki = loadTestPki(env.TEST_PKI);

// A probe route behind the middleware: it answers with what the middleware verified.
const probe = new Hono<AppEnv>();
probe.post("/probe", requireCredential(["keys:put"]), (c) => {
  const cred = c.get("credential");
  return c.json({ action: cred.action, tnAuthList: cred.tnAuthList });
});
probe.onError(errorToResponse);

async function call(authorization?: string) {
  const headers = authorization === undefined ? undefined : { Authorization: authorization };
  const res = await probe.request("https://cps.example.com/probe", { method: "POST", headers }, env);
  return { status: res.status, body: await res.json<Record<string, unknown>>() };
}

describe("STIR credential auth (ATIS-1000096-style bearer token)", () => {
  it("accepts a fresh token from a trusted certificate and exposes its TNAuthList", async () => {
    const res = await call(await bearerFor(await pki.credential("valid"), "keys:put"));
    expect(res.status).toBe(200);
    expect(res.body.action).toBe("keys:put");
    expect(res.body.tnAuthList).toContainEqual({ type: "one", tn: "12155551212" });
  });

  it("refuses the same jti twice (replay guard Durable Object)", async () => {
    const header = await bearerFor(await pki.credential("valid"), "keys:put");
    expect((await call(header)).status).toBe(200);
    const again = await call(header);
    expect(again.status).toBe(401);
    expect(again.body.code).toBe("AUTH_REPLAYED");
  });

  const now = () => Math.floor(Date.now() / 1000);
  it.each([
    ["no Authorization header", async () => undefined, 401, "AUTH_MISSING"],
    ["not a bearer token", async () => "Basic abc", 401, "AUTH_MALFORMED"],
    ["garbage token", async () => "Bearer abc.def.ghi", 401, "AUTH_MALFORMED"],
    [
      "expired certificate",
      async () => bearerFor(await pki.credential("expired"), "keys:put"),
      403,
      "CERT_EXPIRED",
    ],
    [
      "certificate not yet valid",
      async () => bearerFor(await pki.credential("notYetValid"), "keys:put"),
      403,
      "CERT_NOT_YET_VALID",
    ],
    [
      "certificate chaining to another root",
      async () => bearerFor(await pki.credential("wrongAnchor"), "keys:put"),
      403,
      "CERT_UNTRUSTED",
    ],
    [
      "certificate without TNAuthList",
      async () => bearerFor(await pki.credential("noTnAuthList"), "keys:put"),
      403,
      "CERT_NO_TNAUTHLIST",
    ],
    [
      "wrong audience",
      async () => bearerFor(await pki.credential("valid"), "keys:put", { audience: "https://other.example" }),
      401,
      "AUTH_AUDIENCE",
    ],
    [
      "stale iat",
      async () => bearerFor(await pki.credential("valid"), "keys:put", { now: now() - 600 }),
      401,
      "AUTH_EXPIRED",
    ],
    [
      "other action",
      async () => bearerFor(await pki.credential("valid"), "tokens:issue"),
      403,
      "AUTH_ACTION",
    ],
  ])("refuses %s", async (_name, header, status, code) => {
    const res = await call(await header());
    expect(res.status).toBe(status);
    expect(res.body.code).toBe(code);
  });
});
