/**
 * Federation (RFC 8816 §10, §11, §13) across two real CPS instances under `wrangler dev`, each with
 * its own persisted KV and Durable Objects: CPS A serves 1202…, CPS B serves 1415…, and each has a
 * provisioned discovery record naming the other. The AS asks A, is sent to B, fetches the callee's
 * keys from B (by prefix, as signed records it verifies) and stores there; the VS retrieves from B
 * and opens the blob. A learns nothing about the call beyond the discovery lookup, and B's key
 * directory learns only the 100-number block (RFC 8816 §11).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationService } from "../../src/client/as.js";
import { Discovery } from "../../src/client/discovery.js";
import { freePort, type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { issueCredentialToken } from "../../src/stir/credential-token.js";
import { decodeEnvelope, generateRecipientKeyPair, openPassport } from "../../src/stir/envelope.js";
import { jwkThumbprint } from "../../src/stir/key-records.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { signedKeyBody } from "../helpers/key-records.js";

const CALLEE = canonicalTn("14155550123");

interface Jwk {
  x: string;
  kid: string;
  block: string;
  label: string;
}

async function bearer(cred: TestCredential, audience: string, action: string): Promise<string> {
  return `Bearer ${await issueCredentialToken({ privateKey: cred.privateKey, x5c: cred.der, audience, action })}`;
}

describe("two CPS instances side by side (RFC 8816 §10 federation)", () => {
  let a: LocalServer;
  let b: LocalServer;
  let callee: TestCredential;
  let pki: TestPki;

  beforeAll(async () => {
    pki = await createTestPki();
    callee = await pki.issue({
      tnAuthList: [{ type: "range", start: "14155550100", count: 100 }],
      subject: "Callee PBX",
    });
    const [portA, portB] = [await freePort(), await freePort()];
    // Two wrangler dev side by side each need their own inspector port.
    const inspector = async () => ["--inspector-port", String(await freePort())];
    const urlA = `http://127.0.0.1:${portA}`;
    const urlB = `http://127.0.0.1:${portB}`;
    const common = {
      TRUST_ANCHORS_PEM: pki.root.certificate.toString("pem"),
      ALLOW_UNTOKENED_STORES: "true",
    };
    [a, b] = await Promise.all([
      startLocalServer({
        port: portA,
        args: await inspector(),
        vars: {
          ...common,
          SERVED_PREFIXES: "1202",
          DISCOVERY_RECORDS: JSON.stringify([{ prefix: "1415", cps: urlB, ttl: 120 }]),
        },
      }),
      startLocalServer({
        port: portB,
        args: await inspector(),
        vars: {
          ...common,
          SERVED_PREFIXES: "1415",
          DISCOVERY_RECORDS: JSON.stringify([{ prefix: "1202", cps: urlA, ttl: 120 }]),
        },
      }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it("the AS asks A, is sent to B, stores there; the VS retrieves from B and opens it", async () => {
    // Callee side: register the encryption key where its number is served, found through discovery.
    const calleeKeys = await generateRecipientKeyPair();
    const home = (await (await fetch(`${b.url}/.well-known/stir-oob?tn=${CALLEE}`)).json()) as {
      cps: string;
      keys: string;
      source: string;
    };
    expect(home).toMatchObject({ cps: b.url, keys: `${b.url}/keys`, source: "served" });
    // The record covers the block 141555501xx and is signed by the credential covering it (§11).
    const put = await fetch(`${home.keys}/141555501xx`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", Authorization: await bearer(callee, b.url, "keys:put") },
      body: JSON.stringify(
        await signedKeyBody(callee, calleeKeys.publicKey, { blocks: ["141555501xx"], label: "pbx" }),
      ),
    });
    expect(put.status, await put.clone().text()).toBe(201);
    // A does not serve 1415…: its key directory refuses (and stores nothing).
    const misdirected = await fetch(`${a.url}/keys/${CALLEE}`);
    expect(misdirected.status).toBe(421);

    // Discovery at A (the only thing A hears about this call).
    const disc = await fetch(`${a.url}/.well-known/stir-oob?tn=${CALLEE}`);
    expect(disc.status).toBe(200);
    expect(disc.headers.get("Cache-Control")).toBe("public, max-age=120");
    const record = (await disc.json()) as { cps: string; keys: string; source: string; prefix: string };
    expect(record).toEqual({
      prefix: "1415",
      cps: b.url,
      keys: `${b.url}/keys`,
      ttl: 120,
      source: "provisioned",
    });

    // The library's AS: asks A, is sent to B, looks the keys up there by prefix (GET
    // /keys?prefix=141555501xx), verifies the signed record, seals and stores at B.
    const seen: string[] = [];
    const as = new AuthenticationService({
      credential: {
        privateKey: pki.valid.privateKey,
        x5u: "https://certs.example.test/a.pem",
        chain: pki.valid.pem,
      },
      discovery: new Discovery({
        bootstrap: a.url,
        allowLoopbackHttp: true,
        fetch: (input, init) => {
          seen.push(new Request(input, init).url);
          return fetch(input, init);
        },
      }),
      trustAnchors: [pki.root.certificate],
    });
    const call = await as.placeCall({ from: "+1 202 555 0101", to: CALLEE });
    expect(call.cps).toBe(b.url);
    expect(call.stored.map((s) => s.kid)).toEqual([await jwkThumbprint(calleeKeys.publicKey)]);
    expect(seen).toEqual([
      `${a.url}/.well-known/stir-oob?tn=${CALLEE}`,
      `${b.url}/keys?prefix=${CALLEE.slice(0, -2)}xx`,
    ]);
    // VS: retrieves from B (its own CPS) and opens what it can.
    const list = (await (await fetch(`${b.url}/cps/${CALLEE}/ppts`)).json()) as {
      passports: { blob: string }[];
    };
    const opened: string[] = [];
    for (const p of list.passports) {
      try {
        opened.push(await openPassport(calleeKeys.keyPair, CALLEE, decodeEnvelope(p.blob)));
      } catch {
        // dummies and blobs for other keys
      }
    }
    expect(opened).toEqual([call.passport]);

    // A holds nothing for the number: a retrieval there returns only dummies, none of which open.
    const atA = (await (await fetch(`${a.url}/cps/${CALLEE}/ppts`)).json()) as {
      passports: { blob: string }[];
    };
    for (const p of atA.passports) {
      await expect(openPassport(calleeKeys.keyPair, CALLEE, decodeEnvelope(p.blob))).rejects.toThrow();
    }
  });

  it("prefetch alternative: the AS takes B's whole 1415555xxxx block without naming the number", async () => {
    const res = await fetch(`${b.url}/keys?prefix=1415555xxxx`);
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toMatch(/^public, max-age=\d+$/);
    const set = (await res.json()) as { keys: Jwk[] };
    expect(set.keys.some((k) => k.block === "141555501xx" && k.label === "pbx")).toBe(true);
  });

  it("each CPS answers for its own prefixes and points to the other for the rest", async () => {
    const fromB = (await (await fetch(`${b.url}/.well-known/stir-oob?tn=12025550123`)).json()) as {
      cps: string;
      source: string;
    };
    expect(fromB).toMatchObject({ cps: a.url, source: "provisioned" });
    const fromA = (await (await fetch(`${a.url}/.well-known/stir-oob?tn=12025550123`)).json()) as {
      cps: string;
      source: string;
    };
    expect(fromA).toMatchObject({ cps: a.url, source: "served" });
    expect((await fetch(`${a.url}/.well-known/stir-oob?tn=442079460000`)).status).toBe(404);
  });
});
