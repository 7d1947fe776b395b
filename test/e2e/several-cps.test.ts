/**
 * Several CPSes per number (RFC 8816 §10) across three real CPS instances under `wrangler dev`, each
 * with its own persisted KV and Durable Objects. Every instance has the provisioned record "1415 is
 * served by A, B and C" (keys at A), so discovery at any of them names all three (`cpses`).
 *
 * - All up: the AS stores a fresh seal at each (no two hold the same bytes); the VS retrieves from
 *   each and merges the three copies into one candidate.
 * - C stopped (its port closed): the AS proceeds under `storePolicy: { count: 2 }` with C reported
 *   failed; the VS verifies from A and B within the deadline and reports C failed.
 * - A CPS that accepts connections and never answers: a misbehaving-peer TEST DOUBLE (a Node HTTP
 *   server that holds every request), named with A and B in a discovery registration at A. The call
 *   and the verdict are held no longer than the deadline, and it is reported timed out.
 * - The `stir-oob` CLI (real launcher) with C stopped: `place --store-policy 2` proceeds and says C
 *   failed, `verify` is VERIFIED and lists each CPS's answer; plain `place` (policy all) refuses.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthenticationService } from "../../src/client/as.js";
import { Discovery } from "../../src/client/discovery.js";
import { VerificationService } from "../../src/client/vs.js";
import { freePort, type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { parseCertificateChain } from "../../src/stir/cert-parse.js";
import { issueCredentialToken } from "../../src/stir/credential-token.js";
import {
  decodeEnvelope,
  generateRecipientKeyPair,
  openPassport,
  type RecipientKeyPair,
} from "../../src/stir/envelope.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { type CanonicalTn, canonicalTn } from "../../src/stir/tn.js";
import { type CliRun, runCli } from "../helpers/cli.js";
import { signedKeyBody } from "../helpers/key-records.js";

/** Served by A, B and C (the provisioned record). */
const CALLEE = canonicalTn("14155550123");
/** Served by A, B and the silent double (the callee's registration at A). */
const CALLEE_SILENT = canonicalTn("14155550124");
const CALLER = "+1 202 555 0101";
const X5U = "https://certs.example.test/a.pem";
/** The VS deadline under test (the default). */
const DEADLINE_MS = 2_000;

let pki: TestPki;
let callee: TestCredential;
let calleeKeys: RecipientKeyPair;
const servers: LocalServer[] = [];
let urls: string[];
let silent: Server;
let silentUrl: string;
let silentHits = 0;
/** The CLI's home: its demo CA (trusted by the three CPSes too) and credentials. */
let home: string;
const CLI_CALLEE = "+1-415-555-0150";
const CLI_CALLER = "+1-111-555-1111";

function cli(...args: string[]): Promise<CliRun> {
  return runCli(args, { home, cps: urls[0] ?? "" });
}

async function bearer(cred: TestCredential, audience: string, action: string): Promise<string> {
  return `Bearer ${await issueCredentialToken({ privateKey: cred.privateKey, x5c: cred.der, audience, action })}`;
}

const discovery = (bootstrap: string) => new Discovery({ bootstrap, allowLoopbackHttp: true });

function asFor(
  bootstrap: string,
  extra: Partial<ConstructorParameters<typeof AuthenticationService>[0]> = {},
) {
  return new AuthenticationService({
    credential: { privateKey: pki.valid.privateKey, x5u: X5U, chain: pki.valid.pem },
    discovery: discovery(bootstrap),
    trustAnchors: [pki.root.certificate],
    ...extra,
  });
}

function vsFor(bootstrap: string) {
  return new VerificationService({
    keys: [{ kid: "callee", privateKey: calleeKeys.keyPair }],
    trustAnchors: [pki.root.certificate],
    resolveCertificate: async () => parseCertificateChain(pki.valid.pem),
    discovery: discovery(bootstrap),
  });
}

/** The blobs a CPS holds for `tn` that open with the callee's key. */
async function openedAt(url: string, tn: CanonicalTn): Promise<{ blob: string; passport: string }[]> {
  const list = (await (await fetch(`${url}/cps/${tn}/ppts`)).json()) as { passports: { blob: string }[] };
  const out: { blob: string; passport: string }[] = [];
  for (const p of list.passports) {
    try {
      out.push({
        blob: p.blob,
        passport: await openPassport(calleeKeys.keyPair, tn, decodeEnvelope(p.blob)),
      });
    } catch {
      // dummies
    }
  }
  return out;
}

beforeAll(async () => {
  pki = await createTestPki();
  callee = await pki.issue({
    tnAuthList: [{ type: "range", start: "14155550100", count: 100 }],
    subject: "Callee PBX",
  });
  calleeKeys = await generateRecipientKeyPair();
  home = await mkdtemp(join(tmpdir(), "stir-oob-home-"));
  const ca = await runCli(["ca", "init", "--issue", `alice=${CLI_CALLER}`, "--issue", `bob=${CLI_CALLEE}`], {
    home,
  });
  expect(ca.code, ca.stderr).toBe(0);
  // The misbehaving peer: takes the connection, reads the request, never answers.
  silent = createServer(() => {
    silentHits++;
  });
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
  silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;

  const ports = [await freePort(), await freePort(), await freePort()];
  urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const vars = {
    // The test PKI's root and the CLI's demo CA.
    TRUST_ANCHORS_PEM: `${pki.root.certificate.toString("pem")}\n${await readFile(join(home, "ca/root.pem"), "utf8")}`,
    ALLOW_UNTOKENED_STORES: "true",
    // Loopback http in the registration that names the silent double (local test only).
    ALLOW_LOOPBACK_X5U: "true",
    DISCOVERY_RECORDS: JSON.stringify([{ prefix: "1415", cps: urls, keys: `${urls[0]}/keys`, ttl: 120 }]),
  };
  // Three wrangler dev side by side, each with its own inspector port; started one after another so
  // the two-core machine is not asked to bundle three at once.
  for (const port of ports) {
    servers.push(
      await startLocalServer({ port, args: ["--inspector-port", String(await freePort())], vars }),
    );
  }
  const [a] = urls as [string];
  // The callee's key at A's directory (the record's `keys`), as a signed record for its block.
  const put = await fetch(`${a}/keys/141555501xx`, {
    method: "PUT",
    headers: { "Content-Type": "application/json", Authorization: await bearer(callee, a, "keys:put") },
    body: JSON.stringify(await signedKeyBody(callee, calleeKeys.publicKey, { blocks: ["141555501xx"] })),
  });
  expect(put.status, await put.clone().text()).toBe(201);
}, 240_000);

afterAll(async () => {
  silent?.closeAllConnections();
  await Promise.all([
    ...servers.map((s) => s.stop()),
    new Promise((r) => (silent ? silent.close(r) : r(undefined))),
  ]);
  if (home) await rm(home, { recursive: true, force: true });
});

describe("three CPS instances for one number (RFC 8816 §10)", () => {
  it("discovery at any of them names all three; cps (what an older client reads) is the first", async () => {
    for (const url of urls) {
      const body = (await (await fetch(`${url}/.well-known/stir-oob?tn=${CALLEE}`)).json()) as Record<
        string,
        unknown
      >;
      expect(body).toEqual({
        prefix: "1415",
        cps: urls[0],
        cpses: urls,
        keys: `${urls[0]}/keys`,
        ttl: 120,
        source: "provisioned",
      });
    }
  });

  it("all up: a fresh seal stored at each, merged by the VS into one verified candidate", async () => {
    const [a, b, c] = urls as [string, string, string];
    const call = await asFor(b).placeCall({ from: CALLER, to: CALLEE });
    expect(call.copies.map((x) => [x.cps, x.outcome])).toEqual([
      [a, "stored"],
      [b, "stored"],
      [c, "stored"],
    ]);
    const held = await Promise.all(urls.map((u) => openedAt(u, CALLEE)));
    expect(held.map((h) => h.map((x) => x.passport))).toEqual([
      [call.passport],
      [call.passport],
      [call.passport],
    ]);
    // Sealed afresh per CPS: the CPSes cannot match their stores by content.
    expect(new Set(held.flat().map((x) => x.blob)).size).toBe(3);

    const v = await vsFor(c).verifyCall({ to: CALLEE, calling: CALLER });
    expect(v.verdict).toBe("verified");
    expect(v.candidates).toHaveLength(1);
    expect(v.candidates[0]?.blobIds).toHaveLength(3);
    expect(v.sources?.map((s) => s.outcome)).toEqual(["answered", "answered", "answered"]);
  });

  it("C stopped: stored at the two up, verified within the deadline, C reported", async () => {
    const [a, b, c] = urls as [string, string, string];
    await servers[2]?.stop();
    const failing = await asFor(a)
      .placeCall({ from: CALLER, to: CALLEE })
      .catch((e: unknown) => e);
    // The default policy ("all") does not let the call rely on a CPS that is down.
    expect(failing).toMatchObject({ code: "STORE_FAILED" });

    const call = await asFor(a, { storePolicy: { count: 2 } }).placeCall({ from: CALLER, to: CALLEE });
    expect(call.copies.map((x) => [x.cps, x.outcome])).toEqual([
      [a, "stored"],
      [b, "stored"],
      [c, "failed"],
    ]);
    expect(call.copies[2]?.error?.code).toBe("UNAVAILABLE");

    const t = performance.now();
    const v = await vsFor(a).verifyCall({ to: CALLEE, calling: CALLER });
    const took = performance.now() - t;
    expect(v.verdict).toBe("verified");
    // The refused call above left its copies at A and B as well, so either PASSporT may be the one
    // claimed; this call's passes its checks whichever it is.
    expect(v.candidates.find((x) => x.passport === call.passport)?.ok).toBe(true);
    expect(v.sources?.map((s) => [s.cps, s.outcome])).toEqual([
      [a, "answered"],
      [b, "answered"],
      [c, "failed"],
    ]);
    expect(v.sources?.[2]?.error?.code).toBe("UNAVAILABLE");
    expect(took).toBeLessThan(DEADLINE_MS);
  });

  it("a CPS that never answers (test double) holds neither the call nor the verdict past the deadline", async () => {
    const [a, b] = urls as [string, string];
    // The callee's provider names A, B and the silent peer for its number (a registration at A).
    const reg = await fetch(`${a}/discovery/${CALLEE_SILENT}`, {
      method: "PUT",
      headers: {
        "Content-Type": "application/json",
        Authorization: await bearer(callee, a, "discovery:put"),
      },
      body: JSON.stringify({ cps: [a, b, silentUrl], keys: `${a}/keys`, ttl: 60 }),
    });
    expect(reg.status, await reg.clone().text()).toBe(201);

    let t = performance.now();
    const call = await asFor(a, { storePolicy: { count: 2 }, cpsDeadlineMs: 1_000 }).placeCall({
      from: CALLER,
      to: CALLEE_SILENT,
    });
    const callTook = performance.now() - t;
    expect(call.copies.map((x) => [x.cps, x.outcome])).toEqual([
      [a, "stored"],
      [b, "stored"],
      [silentUrl, "timed-out"],
    ]);
    expect(callTook).toBeLessThan(1_000 + 1_500);

    const hitsBefore = silentHits;
    t = performance.now();
    const v = await vsFor(a).verifyCall({ to: CALLEE_SILENT, calling: CALLER });
    const took = performance.now() - t;
    expect(v.verdict).toBe("verified");
    expect(v.sources?.map((s) => [s.cps, s.outcome])).toEqual([
      [a, "answered"],
      [b, "answered"],
      [silentUrl, "timed-out"],
    ]);
    // It was asked (and said nothing): the deadline, not a skipped request, kept the verdict on time.
    expect(silentHits).toBeGreaterThan(hitsBefore);
    expect(took).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    expect(took).toBeLessThan(DEADLINE_MS + 1_500);
  });

  it("stir-oob place --store-policy 2 and verify, with C stopped (the real CLI)", async () => {
    const [a, b, c] = urls as [string, string, string];
    expect((await cli("keygen", "--tn", CLI_CALLEE)).code).toBe(0);
    const reg = await cli("keys", "register", "--tn", CLI_CALLEE);
    expect(reg.code, reg.stderr).toBe(0);

    // Policy "all" (default): C is down, so the call must not rely on out-of-band.
    const all = await cli("place", "--from", CLI_CALLER, "--to", CLI_CALLEE, "--no-tokens");
    expect(all.code, all.stdout).not.toBe(0);
    expect(all.stderr).toContain("2 of 3 CPSes hold the call, the store policy needs 3");
    expect(all.stderr).toContain(`${c}: failed (UNAVAILABLE)`);

    const two = await cli(
      "place",
      "--from",
      CLI_CALLER,
      "--to",
      CLI_CALLEE,
      "--no-tokens",
      "--store-policy",
      "2",
    );
    expect(two.code, two.stderr).toBe(0);
    expect(two.stdout).toContain("CALL MAY PROCEED");
    expect(two.stdout).toContain(`✔ ${a}: stored`);
    expect(two.stdout).toContain(`✔ ${b}: stored`);
    expect(two.stdout).toContain(`• ${c}: failed (UNAVAILABLE)`);

    const v = await cli("verify", "--to", CLI_CALLEE, "--calling", CLI_CALLER, "--json");
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const verdict = JSON.parse(v.stdout) as { verdict: string; sources: { cps: string; outcome: string }[] };
    expect(verdict.verdict).toBe("verified");
    expect(verdict.sources.map((x) => [x.cps, x.outcome])).toEqual([
      [a, "answered"],
      [b, "answered"],
      [c, "failed"],
    ]);
    expect(
      (await cli("place", "--to", CLI_CALLEE, "--from", CLI_CALLER, "--store-policy", "some")).code,
    ).toBe(64);
  }, 120_000);
});
