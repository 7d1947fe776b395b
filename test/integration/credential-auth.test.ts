/**
 * STIR credential authentication middleware (docs/design.md "STIR credential auth", invariant 5) against
 * the real ReplayGuard Durable Object and the test PKI the Worker trusts.
 */
import { env } from "cloudflare:test";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { requireCredential } from "../../src/http/credential-auth.js";
import { errorToResponse } from "../../src/http/errors.js";
import type { AppEnv } from "../../src/http/types.js";
import { issueCredentialToken } from "../../src/stir/credential-token.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { signedKeyBody } from "../helpers/key-records.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";
import { bearerFor, loadTestPki, type WorkerCredential } from "../helpers/pki.js";

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
  const res = await probe.request(`${TEST_CPS_ORIGIN}/probe`, { method: "POST", headers }, env);
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

describe("adversary #9: a delegate CA's number scope (RFC 9060 §4)", () => {
  /** Registers a key for `tn` as `leaf`: its token, and a key record it signed. */
  const putKey = async (tn: string, leaf: WorkerCredential) => {
    const { publicKey } = await generateRecipientKeyPair();
    const res = await app.request(
      `${TEST_CPS_ORIGIN}/keys/${tn}`,
      {
        method: "PUT",
        headers: { Authorization: await bearerFor(leaf, "keys:put"), "Content-Type": "application/json" },
        body: JSON.stringify(await signedKeyBody(leaf, publicKey, { blocks: [tn], label: "a9" })),
      },
      env,
    );
    return {
      status: res.status,
      type: res.headers.get("content-type"),
      body: await res.json<Record<string, unknown>>(),
    };
  };
  const keysOf = async (tn: string) => {
    const res = await app.request(`${TEST_CPS_ORIGIN}/keys/${tn}`, {}, env);
    return res.status === 200 ? (await res.json<{ keys: unknown[] }>()).keys.length : 0;
  };

  it("a sub-CA scoped to one number issues a leaf for another: key registration is refused", async () => {
    const subCa = await pki.delegate({
      tnAuthList: [{ type: "one", tn: "12025550142" }],
      name: "Scoped sub-CA",
    });
    const leaf = await pki.issue({ issuer: subCa, tnAuthList: [{ type: "one", tn: "14155550199" }] });
    const res = await putKey("14155550199", leaf);
    expect(res.status).toBe(403);
    expect(res.type).toBe("application/problem+json");
    expect(res.body.code).toBe("CERT_CHAIN_INVALID");
    expect(await keysOf("14155550199")).toBe(0);
  });

  it("the same sub-CA's in-scope leaf registers keys for its own number", async () => {
    const subCa = await pki.delegate({
      tnAuthList: [{ type: "one", tn: "14155550142" }],
      name: "Scoped sub-CA 2",
    });
    const leaf = await pki.issue({ issuer: subCa, tnAuthList: [{ type: "one", tn: "14155550142" }] });
    const res = await putKey("14155550142", leaf);
    expect(res.status).toBeLessThan(300);
    expect(await keysOf("14155550142")).toBe(1);
  });
});

describe("adversary #10: x5u is checked before any fetch, and errors carry no upstream detail", () => {
  const x5uBearer = async (x5u: string, now?: number) => {
    const cred = await pki.credential("valid");
    const token = await issueCredentialToken({
      privateKey: cred.privateKey,
      x5u,
      audience: TEST_CPS_ORIGIN,
      action: "keys:put",
      ...(now === undefined ? {} : { now }),
    });
    return `Bearer ${token}`;
  };

  it.each([
    "https://127.0.0.1/chain.pem",
    "https://localhost/chain.pem",
    "https://[::ffff:127.0.0.1]/chain.pem",
    "https://2130706433/chain.pem",
    "https://10.0.0.1/chain.pem",
    "https://169.254.169.254/latest/meta-data",
    "https://cert.example.org:8443/chain.pem",
  ])("refuses x5u %s with a fixed title, without fetching", async (x5u) => {
    const res = await call(await x5uBearer(x5u));
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: "X5U_FETCH_FAILED", title: "The certificate URL is not allowed" });
    expect(JSON.stringify(res.body)).not.toMatch(/127|localhost|ffff|10\.0|169\.254|8443|example\.org/);
  });

  it("a stale token naming an x5u is refused on its iat before any fetch", async () => {
    const res = await call(
      await x5uBearer("https://127.0.0.1/chain.pem", Math.floor(Date.now() / 1000) - 600),
    );
    expect(res.status).toBe(401);
    expect(res.body.code).toBe("AUTH_EXPIRED");
  });
});

describe("adversary #10: the operator's X5U_ALLOWED_HOSTS", () => {
  const allowListed = { ...env, X5U_ALLOWED_HOSTS: "certs.example.net, *.sti-cr.example" } as Env;
  const x5uCall = async (x5u: string) => {
    const cred = await pki.credential("valid");
    const token = await issueCredentialToken({
      privateKey: cred.privateKey,
      x5u,
      audience: TEST_CPS_ORIGIN,
      action: "keys:put",
    });
    const res = await probe.request(
      `${TEST_CPS_ORIGIN}/probe`,
      { method: "POST", headers: { Authorization: `Bearer ${token}` } },
      allowListed,
    );
    return { status: res.status, body: await res.json<Record<string, unknown>>() };
  };

  it("refuses a public host that is not listed, without fetching", async () => {
    const res = await x5uCall("https://evil.example/chain.pem");
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: "X5U_FETCH_FAILED", title: "The certificate URL is not allowed" });
  });

  it("lets a listed host through the policy (the fetch itself then fails here: no such host)", async () => {
    const res = await x5uCall("https://a.sti-cr.example/chain.pem");
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      code: "X5U_FETCH_FAILED",
      title: "The certificate could not be fetched",
    });
  });
});
