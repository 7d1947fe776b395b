/**
 * A dishonest key directory (RFC 8816 §11; docs/threat-model.md), end to end against the real CPS
 * under `wrangler dev`. Bob's genuine key is registered at the CPS as a signed record. Between the AS
 * and the CPS sits a LYING DIRECTORY: a small Node HTTP server that is a TEST DOUBLE on purpose,
 * because the point is a peer that misbehaves (a directory that was broken into, or a CPS operator
 * who wants to read PASSporTs). It passes every request on to the real CPS, answers discovery with
 * itself as CPS and key directory, and adds substituted keys to every key answer: one unsigned, one
 * signed by a credential that does not cover Bob's number, and Bob's genuine record with the JWK
 * swapped for the attacker's key. The library's AS and `stir-oob place` must seal only to Bob's
 * genuine key (Bob's VS verifies, the attacker's key opens nothing stored), and with only
 * substituted keys refuse with NO_VALID_KEYS and store nothing.
 */
import "reflect-metadata";
import { rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { PemConverter } from "@peculiar/x509";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalCredential, loadCalleeKeys, loadCredentials } from "../../src/cli/home.js";
import { AuthenticationService } from "../../src/client/as.js";
import { CpsClient } from "../../src/client/cps-client.js";
import { Discovery } from "../../src/client/discovery.js";
import { StirClientError } from "../../src/client/errors.js";
import { VerificationService } from "../../src/client/vs.js";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { parseCertificate } from "../../src/stir/cert-parse.js";
import { issueCredentialToken } from "../../src/stir/credential-token.js";
import { decodeEnvelope, generateRecipientKeyPair, openPassport } from "../../src/stir/envelope.js";
import { jwkThumbprint } from "../../src/stir/key-records.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type CliRun, cliHomeWithCa, runCli } from "../helpers/cli.js";
import { signedKeyBody, signedKeyRecord } from "../helpers/key-records.js";

const ALICE = canonicalTn("+1 111 555 1111");
const BOB = canonicalTn("+2 222 555 2222");

let home: string;
let server: LocalServer;
let liar: LyingDirectory;
let alice: LocalCredential;
let bobCred: LocalCredential;
let mallory: LocalCredential;
let root: ReturnType<typeof parseCertificate>;
let bobKid: string;
let bobRecord: string;
const attacker = { publicKey: new Uint8Array(), keyPair: undefined as unknown as CryptoKeyPair, kid: "" };

interface LyingDirectory {
  readonly url: string;
  /** Entries added to every key answer. */
  fakes: Record<string, unknown>[];
  /** Drop the genuine entries (then only substituted keys are served). */
  dropGenuine: boolean;
  /** `POST /cps/...` requests passed on (stores). */
  stores: number;
  close(): Promise<void>;
}

function der(cred: LocalCredential) {
  return { privateKey: cred.privateKey, der: cred.chain.certificates.map((c) => new Uint8Array(c.rawData)) };
}

function b64u(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

function body(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}

/** The test double: a proxy to the real CPS that lies about keys (see the file comment). */
async function lyingDirectory(real: string): Promise<LyingDirectory> {
  const state = { fakes: [] as Record<string, unknown>[], dropGenuine: false, stores: 0 };
  let self = "";
  const srv: Server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", self);
      if (url.pathname === "/.well-known/stir-oob") {
        res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
        res.end(JSON.stringify({ prefix: "", cps: self, keys: `${self}/keys`, ttl: 0 }));
        return;
      }
      if (req.method === "POST" && url.pathname.startsWith("/cps/")) state.stores++;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string" && !["host", "connection", "content-length"].includes(k)) headers[k] = v;
      }
      const payload = req.method === "GET" || req.method === "HEAD" ? undefined : await body(req);
      const upstream = await fetch(`${real}${url.pathname}${url.search}`, {
        method: req.method ?? "GET",
        headers,
        ...(payload ? { body: payload } : {}),
      });
      if (req.method === "GET" && url.pathname.startsWith("/keys") && upstream.ok) {
        const set = (await upstream.json()) as { keys: unknown[] };
        const keys = [...(state.dropGenuine ? [] : set.keys), ...state.fakes];
        res.writeHead(200, { "content-type": "application/jwk-set+json", "cache-control": "no-store" });
        res.end(JSON.stringify({ keys }));
        return;
      }
      const out: Record<string, string> = {};
      for (const k of ["content-type", "location", "cache-control", "retry-after"]) {
        const v = upstream.headers.get(k);
        if (v !== null) out[k] = v;
      }
      res.writeHead(upstream.status, out);
      res.end(Buffer.from(await upstream.arrayBuffer()));
    } catch {
      res.writeHead(502);
      res.end();
    }
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  self = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return Object.assign(state, {
    url: self,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  });
}

function cli(...args: string[]): Promise<CliRun> {
  return runCli(args, { home });
}

/** `stir-oob place` of Alice's call to Bob through the lying directory, with `extra` options. */
function placeAtLiar(...extra: string[]): Promise<CliRun> {
  const route = ["--from", "+1-111-555-1111", "--to", "+2-222-555-2222", "--no-tokens"];
  return cli("place", ...route, "--cps", liar.url, ...extra);
}

async function bearer(cred: LocalCredential, action: string): Promise<string> {
  const token = await issueCredentialToken({
    privateKey: cred.privateKey,
    x5c: der(cred).der,
    audience: server.url,
    action,
  });
  return `Bearer ${token}`;
}

/** Every blob stored for Bob that the attacker's key opens (must stay empty). */
async function openedByAttacker(): Promise<number> {
  let opened = 0;
  for (const { blob } of await new CpsClient({ baseUrl: server.url }).list(BOB)) {
    try {
      await openPassport(attacker.keyPair, BOB, decodeEnvelope(blob));
      opened++;
    } catch {
      // not for the attacker: the expected case
    }
  }
  return opened;
}

function libraryAs(): AuthenticationService {
  const discovery = new Discovery({ bootstrap: liar.url, allowLoopbackHttp: true });
  return new AuthenticationService({
    credential: { privateKey: alice.privateKey, x5u: alice.x5u, chain: alice.chain },
    discovery,
    trustAnchors: [root],
  });
}

async function bobVerifies(): Promise<string> {
  const keys = await loadCalleeKeys(home, BOB);
  const vs = new VerificationService({
    keys: keys.map((k) => k.key),
    trustAnchors: [root],
    resolveCertificate: async () => alice.chain,
    cps: server.url,
  });
  return (await vs.verifyCall({ to: BOB, calling: ALICE })).verdict;
}

beforeAll(async () => {
  let rootPem: string;
  ({ home, rootPem } = await cliHomeWithCa("stir-oob-liar-", {
    alice: "+1-111-555-1111",
    bob: "+2-222-555-2222",
    mallory: "+1-111-555-6666",
  }));
  root = parseCertificate(PemConverter.decode(rootPem)[0] as ArrayBuffer);
  const creds = await loadCredentials(home);
  const named = (n: string) => creds.find((c) => c.name === n) as LocalCredential;
  [alice, bobCred, mallory] = [named("alice"), named("bob"), named("mallory")];
  server = await startLocalServer({
    vars: { TRUST_ANCHORS_PEM: rootPem, ALLOW_UNTOKENED_STORES: "true" },
  });
  liar = await lyingDirectory(server.url);

  // Bob's genuine key: made by the CLI (so `stir-oob verify` holds it), registered as a signed record.
  const gen = await cli("keygen", "--tn", "+2-222-555-2222", "--label", "bob-phone");
  expect(gen.code, gen.stderr).toBe(0);
  const [bob] = await loadCalleeKeys(home, BOB);
  if (!bob) throw new Error("keygen wrote no key");
  bobKid = await jwkThumbprint(bob.raw);
  const reg = await signedKeyBody(der(bobCred), bob.raw, { blocks: [BOB], label: "bob-phone" });
  bobRecord = reg.record;
  const res = await fetch(`${server.url}/keys/${BOB}`, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: await bearer(bobCred, "keys:put") },
    body: JSON.stringify(reg),
  });
  expect(res.status, await res.clone().text()).toBeLessThan(300);

  // The attacker's key, served three ways.
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  Object.assign(attacker, { keyPair, publicKey, kid: await jwkThumbprint(publicKey) });
  const jwk = { kty: "OKP", crv: "X25519", use: "enc", x: b64u(publicKey), kid: attacker.kid, block: BOB };
  liar.fakes = [
    { ...jwk, label: "unsigned" },
    // Mallory's credential is valid and trusted, but covers +1 111 555 6666, not Bob.
    {
      ...jwk,
      label: "wrong-credential",
      record: await signedKeyRecord(der(mallory), publicKey, { blocks: [BOB] }),
    },
    // Bob's genuine record, the served JWK swapped for the attacker's key.
    { ...jwk, label: "swapped", record: bobRecord },
  ];
});

afterAll(async () => {
  await liar?.close();
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("a lying key directory (RFC 8816 §11) against `wrangler dev`", () => {
  it("library AS: seals only to Bob's genuine key; Bob verifies; the attacker's key opens nothing", async () => {
    liar.dropGenuine = false;
    const call = await libraryAs().placeCall({ from: ALICE, to: BOB });
    expect(call.stored.map((s) => s.kid)).toEqual([bobKid]);
    expect(call.skipped.map((s) => s.code).sort()).toEqual(["CERT_NOT_AUTHORISED", "KEY_RECORD_UNSIGNED"]);
    expect(await bobVerifies()).toBe("verified");
    expect(await openedByAttacker()).toBe(0);
  });

  it("library AS: with only substituted keys it refuses NO_VALID_KEYS and stores nothing", async () => {
    liar.dropGenuine = false;
    liar.stores = 0;
    // The swapped entry carries Bob's genuine record, which still yields Bob's key: drop it too.
    const fakes = liar.fakes;
    liar.fakes = fakes.filter((f) => f.label !== "swapped");
    liar.dropGenuine = true;
    try {
      const err = await libraryAs()
        .placeCall({ from: ALICE, to: BOB })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StirClientError);
      expect((err as StirClientError).code, String((err as Error).cause ?? err)).toBe("NO_VALID_KEYS");
      expect(liar.stores).toBe(0);
    } finally {
      liar.fakes = fakes;
      liar.dropGenuine = false;
    }
  });

  it("stir-oob place: seals only to the genuine key and lists the skipped ones; Bob's verify says verified", async () => {
    const place = await placeAtLiar("--json");
    expect(place.code, place.stderr).toBe(0);
    const out = JSON.parse(place.stdout) as { stored: { kid: string }[]; skipped: { code: string }[] };
    expect(out.stored.map((s) => s.kid)).toEqual([bobKid]);
    expect(out.skipped.map((s) => s.code).sort()).toEqual(["CERT_NOT_AUTHORISED", "KEY_RECORD_UNSIGNED"]);
    const human = await placeAtLiar();
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/skipped key \S+: KEY_RECORD_UNSIGNED/);
    expect(human.stdout).toMatch(/skipped key \S+: CERT_NOT_AUTHORISED/);
    const verify = await cli(
      "verify",
      "--to",
      "+2-222-555-2222",
      "--calling",
      "+1-111-555-1111",
      "--cps",
      server.url,
    );
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(await openedByAttacker()).toBe(0);
  });

  it("stir-oob place: with only substituted keys it exits 69 NO_VALID_KEYS and stores nothing", async () => {
    const fakes = liar.fakes;
    liar.fakes = fakes.filter((f) => f.label !== "swapped");
    liar.dropGenuine = true;
    liar.stores = 0;
    try {
      const run = await placeAtLiar();
      expect(run.code).toBe(69);
      expect(run.stderr).toContain("No key served for the called number passed the record check");
      expect(run.stderr).toMatch(/skipped key \S+: KEY_RECORD_UNSIGNED/);
      const json = await placeAtLiar("--json");
      expect(json.code).toBe(69);
      expect(JSON.parse(json.stdout).error).toMatchObject({ code: "NO_VALID_KEYS", exit: 69 });
      expect(liar.stores).toBe(0);
      // --allow-unsigned-keys trusts the directory: now it seals to the attacker's unsigned key.
      // That is exactly what the option costs (docs/threat-model.md).
      const unsafe = await placeAtLiar("--allow-unsigned-keys", "--json");
      expect(unsafe.code, unsafe.stderr).toBe(0);
      expect((JSON.parse(unsafe.stdout) as { stored: { kid: string }[] }).stored.map((s) => s.kid)).toEqual([
        attacker.kid,
      ]);
      expect(await openedByAttacker()).toBe(1);
    } finally {
      liar.fakes = fakes;
      liar.dropGenuine = false;
    }
  });
});
