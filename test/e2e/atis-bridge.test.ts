/**
 * The bridge from the ATIS routes to RFC 8816 (src/federation/bridge.ts), end to end on a real
 * `wrangler dev` CPS with the `stir-oob` CLI as the callee uses it: Bob registers an encryption key
 * for his number as a signed key record (RFC 8816 §11); a legacy authentication service publishes a
 * plaintext SHAKEN PASSporT the ATIS way (ATIS-1000096 `POST /passports/{DEST}/{ORIG}`); Bob's
 * RFC 8816 verifier (`stir-oob verify`, §8.2) retrieves from `/cps/{tn}/ppts`, opens the sealed copy
 * and reports the call VERIFIED. A number without registered keys gets nothing in its RFC 8816
 * queue: every blob listed there is one of its decoys, recomputed here from the DECOY_SECRET the test
 * gave the CPS (src/dummies/decoys.ts).
 *
 * The PASSporT's x5u is served over http on loopback (ALLOW_LOOPBACK_X5U, local development only);
 * the CLI resolves the same URL from its home's x5u map (config.json), as its demo credentials do.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentialFor, type LocalCredential } from "../../src/cli/home.js";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { Decoys } from "../../src/dummies/decoys.js";
import { ENVELOPE_TEXT_LENGTH, MAX_PASSPORT_LENGTH } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type CliRun, runCli } from "../helpers/cli.js";
import { atisPublish, type CertRepository, shakenPassport, startCertRepository } from "./atis-e2e-helpers.js";

const ALICE = canonicalTn("+1-111-555-1111");
const BOB = canonicalTn("+2-222-555-2222");
/** No keys are ever registered for this number. */
const CAROL = canonicalTn("+3-333-555-3333");
const TTL_MS = 60_000;

let home: string;
let server: LocalServer;
let certs: CertRepository;
let alice: LocalCredential;
let aliceX5u: string;
const decoySecret = randomBytes(32).toString("hex");
const decoys = new Decoys(decoySecret);

function cli(...args: string[]): Promise<CliRun> {
  return runCli(args, { home, cps: server?.url ?? "" });
}

/** GET /cps/{tn}/ppts: the listed blobs, and which of them are not the number's decoys. */
async function rfc8816List(
  tn: typeof BOB,
): Promise<{ blobs: { id: string; blob: string }[]; real: string[] }> {
  const before = Date.now();
  const res = await fetch(`${server.url}/cps/${tn}/ppts`);
  expect(res.status).toBe(200);
  const { passports } = (await res.json()) as { passports: { id: string; blob: string }[] };
  const after = Date.now();
  // Decoys live at either end of the request (one may be born or die while it runs).
  const ids = new Set(
    [...(await decoys.live(tn, TTL_MS, before)), ...(await decoys.live(tn, TTL_MS, after))].map((d) => d.id),
  );
  return { blobs: passports, real: passports.filter((p) => !ids.has(p.id)).map((p) => p.id) };
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "stir-oob-home-"));
  // The CLI's demo CA (TEST ONLY): Alice's carrier signs PASSporTs, Bob registers his key.
  const ca = await cli("ca", "init", "--issue", "alice=+1-111-555-1111", "--issue", "bob=+2-222-555-2222");
  expect(ca.code, ca.stderr).toBe(0);
  alice = await credentialFor(home, undefined, "alice");
  certs = await startCertRepository();
  aliceX5u = certs.serve("alice", alice.chainPem);
  // The CLI's VS resolves that URL from Alice's chain file, like its demo x5u URLs.
  const configFile = join(home, "config.json");
  const config = JSON.parse(await readFile(configFile, "utf8")) as { x5u?: Record<string, string> };
  config.x5u = { ...config.x5u, [aliceX5u]: "credentials/alice/chain.pem" };
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`);
  server = await startLocalServer({
    vars: {
      TRUST_ANCHORS_PEM: await readFile(join(home, "ca/root.pem"), "utf8"),
      ALLOW_LOOPBACK_X5U: "true",
      DECOY_SECRET: decoySecret,
    },
  });
}, 120_000);

afterAll(async () => {
  await Promise.all([server?.stop(), certs?.close()]);
  if (home) await rm(home, { recursive: true, force: true });
});

/** Alice's carrier publishes one SHAKEN PASSporT for a call to `dest`, the ATIS way. */
async function publishFromAlice(dest: string): Promise<string> {
  const signer = {
    privateKey: alice.privateKey,
    der: alice.chain.certificates.map((c) => new Uint8Array(c.rawData)),
  };
  const passport = await shakenPassport(alice.privateKey, aliceX5u, ALICE, dest);
  const res = await atisPublish(server.url, signer, dest, ALICE, [passport]);
  expect(res.status, await res.clone().text()).toBe(201);
  return passport;
}

describe("bridge: an ATIS publish reaches RFC 8816 verifiers (sealed to the callee's registered keys)", () => {
  it("Bob registers a key; an ATIS publish for his number is VERIFIED by `stir-oob verify`", async () => {
    expect((await cli("keygen", "--tn", "+2-222-555-2222", "--label", "bob-phone")).code).toBe(0);
    const reg = await cli("keys", "register", "--tn", "+2-222-555-2222");
    expect(reg.code, reg.stderr).toBe(0);
    expect((await rfc8816List(BOB)).real).toEqual([]);

    const passport = await publishFromAlice(BOB);

    // One sealed copy (one key, one PASSporT) among the decoys, of the one length they all have.
    const listed = await rfc8816List(BOB);
    expect(listed.real).toHaveLength(1);
    for (const b of listed.blobs) expect(b.blob).toHaveLength(ENVELOPE_TEXT_LENGTH);

    const run = await cli("verify", "--to", "+2-222-555-2222", "--calling", "+1-111-555-1111");
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/^✔ VERIFIED {2}call \+11115551111 → \+22225552222/);
    const { origid } = JSON.parse(Buffer.from(passport.split(".")[1] ?? "", "base64url").toString()) as {
      origid: string;
    };
    expect(run.stdout).toContain(`origid ${origid}`);
  }, 120_000);

  it("a PASSporT too long for an envelope is stored the ATIS way but not bridged (the publish stands)", async () => {
    // A long x5u path makes a valid PASSporT longer than the 1,022 bytes an envelope holds.
    const longX5u = certs.serve(`alice-${"x".repeat(700)}`, alice.chainPem);
    const signer = {
      privateKey: alice.privateKey,
      der: alice.chain.certificates.map((c) => new Uint8Array(c.rawData)),
    };
    const passport = await shakenPassport(alice.privateKey, longX5u, ALICE, BOB);
    expect(passport.length).toBeGreaterThan(MAX_PASSPORT_LENGTH);
    const before = await rfc8816List(BOB);
    const res = await atisPublish(server.url, signer, BOB, ALICE, [passport]);
    expect(res.status, await res.clone().text()).toBe(201);
    const after = await rfc8816List(BOB);
    // Nothing new (an earlier real blob may have expired meanwhile).
    for (const id of after.real) expect(before.real).toContain(id);
  }, 60_000);

  it("a number without registered keys gets nothing in its RFC 8816 queue (decoys only)", async () => {
    expect((await rfc8816List(CAROL)).real).toEqual([]);
    await publishFromAlice(CAROL);
    const listed = await rfc8816List(CAROL);
    expect(listed.blobs.length).toBeGreaterThan(0);
    expect(listed.real).toEqual([]);
  }, 60_000);
});
