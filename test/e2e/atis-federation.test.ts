/**
 * ATIS federation across two real CPS instances under `wrangler dev` (ATIS-1000096 "OOB Multiple
 * STI-CPS": every publish is re-published to the peer CPSes with `action: republish`): A and B name
 * each other in ATIS_PEERS and each holds its own ATIS_CPS_CREDENTIAL (TEST ONLY: a test PKI leaf
 * listing its SPC, SPCA / SPCB). Republishing goes through the Cloudflare Queue ATIS_REPUBLISH, which
 * miniflare runs locally (held in memory by the local broker: a restart of A would lose it; the
 * platform's queue is durable).
 *
 * - B down during the publish at A (its port reserved, nothing listening): A's queue retries every
 *   2 s; B starts, the next try lands, and B answers the retrieval within the PASSporT's lifetime.
 * - B up: a publish at A is retrieved at B.
 * - No loop: what B takes as a republish is never re-published; a publish at B does reach A.
 * The PASSporTs are SHAKEN, their x5u certificates served over http on loopback (ALLOW_LOOPBACK_X5U).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { cpsCredentialSecret } from "../helpers/federation.js";
import {
  atisPublish,
  atisRetrieve,
  type CertRepository,
  pollUntil,
  shakenPassport,
  startCertRepository,
} from "./atis-e2e-helpers.js";

const DEST = canonicalTn("14155550123");
/** One calling number per case (the test PKI's valid leaf covers 12025550100-199). */
const ORIG_DOWN = canonicalTn("12025550102");
const ORIG_UP = canonicalTn("12025550101");
const ORIG_REPUBLISHED = canonicalTn("12025550103");
const ORIG_AT_B = canonicalTn("12025550104");

let pki: TestPki;
let cpsA: TestCredential;
let cpsB: TestCredential;
/** The callee's provider: covers DEST, so it may retrieve (CERT_NOT_AUTHORISED otherwise). */
let calleeSp: TestCredential;
let certs: CertRepository;
let x5u: string;
let a: LocalServer;
let b: LocalServer | undefined;
let urlA: string;
let urlB: string;
let startB: () => Promise<LocalServer>;

/** Log lines of one event in a server's output (our logEvent JSON lines). */
function events(server: LocalServer, event: string): Record<string, unknown>[] {
  return server
    .output()
    .split("\n")
    .flatMap((line) => {
      const at = line.indexOf(`{"event":"${event}"`);
      if (at < 0) return [];
      try {
        return [JSON.parse(line.slice(at)) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

beforeAll(async () => {
  pki = await createTestPki();
  [cpsA, cpsB, calleeSp] = await Promise.all([
    pki.issue({ tnAuthList: [{ type: "spc", spc: "SPCA" }], subject: "CPS A" }),
    pki.issue({ tnAuthList: [{ type: "spc", spc: "SPCB" }], subject: "CPS B" }),
    pki.issue({ tnAuthList: [{ type: "range", start: "14155550100", count: 100 }], subject: "Callee SP" }),
  ]);
  certs = await startCertRepository();
  // The originating carrier signs its PASSporTs with the PKI's valid leaf (SPC 709J), x5u on loopback.
  x5u = certs.serve("carrier", pki.valid.pem);
  const [portA, portB] = [await freePort(), await freePort()];
  urlA = `http://127.0.0.1:${portA}`;
  urlB = `http://127.0.0.1:${portB}`;
  const common = {
    TRUST_ANCHORS_PEM: pki.root.certificate.toString("pem"),
    ALLOW_LOOPBACK_X5U: "true",
  };
  // Two wrangler dev side by side each need their own inspector port.
  const inspector = async () => ["--inspector-port", String(await freePort())];
  const [secretA, secretB] = await Promise.all([cpsCredentialSecret(cpsA), cpsCredentialSecret(cpsB)]);
  startB = async () =>
    startLocalServer({
      port: portB,
      args: await inspector(),
      vars: {
        ...common,
        ATIS_PEERS: JSON.stringify([{ url: urlA, spc: "SPCA" }]),
        ATIS_CPS_CREDENTIAL: secretB,
      },
    });
  // Only A for now: B is down during the first publish (its port reserved above, nothing on it).
  a = await startLocalServer({
    port: portA,
    args: await inspector(),
    vars: {
      ...common,
      ATIS_PEERS: JSON.stringify([{ url: urlB, spc: "SPCB" }]),
      ATIS_CPS_CREDENTIAL: secretA,
    },
  });
}, 120_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), certs?.close()]);
});

describe("ATIS republish between two CPS instances (ATIS-1000096 mesh, through a Cloudflare Queue)", () => {
  it("B is down during the publish at A: the queue retries, and once B is up it serves the PASSporT within its lifetime", async () => {
    const iat = Math.floor(Date.now() / 1000);
    const passport = await shakenPassport(pki.valid.privateKey, x5u, ORIG_DOWN, DEST, iat);
    const res = await atisPublish(urlA, pki.valid, DEST, ORIG_DOWN, [passport]);
    expect(res.status, await res.clone().text()).toBe(201);
    expect(await res.json()).toEqual({ status: 201, message: "Created" });
    // A tried B and found nobody there: retried, not lost.
    const retried = await pollUntil(
      async () => (events(a, "atis_republish_retry").some((e) => e.status === "network") ? true : undefined),
      Date.now() + 15_000,
    );
    expect(retried, a.output()).toBe(true);

    b = await startB();
    const lifetimeEnds = (iat + 60) * 1000;
    const got = await pollUntil(async () => {
      const r = await atisRetrieve(urlB, calleeSp, DEST, ORIG_DOWN);
      return r.status === 200 ? r : undefined;
    }, lifetimeEnds);
    expect(got, `${a.output()}\n--- B ---\n${b.output()}`).toMatchObject({
      status: 200,
      passports: [passport],
    });
    expect(Date.now()).toBeLessThan(lifetimeEnds);
    // It came by a later try of the same message, not a new one (A logs it once B's 201 is in).
    const sent = await pollUntil(async () => {
      const e = events(a, "atis_republish_sent");
      return e.length > 0 ? e : undefined;
    }, Date.now() + 5_000);
    expect(sent, a.output()).toEqual([expect.objectContaining({ peer: "SPCB", status: 201 })]);
    expect(Number(sent?.[0]?.attempts)).toBeGreaterThan(1);
  }, 120_000);

  it("B up: a publish at A is retrieved at B (and at A)", async () => {
    expect(b).toBeDefined();
    const passport = await shakenPassport(pki.valid.privateKey, x5u, ORIG_UP, DEST);
    const res = await atisPublish(urlA, pki.valid, DEST, ORIG_UP, [passport]);
    expect(res.status, await res.clone().text()).toBe(201);
    // Before the queue delivers, B has none: the 404 of the ATIS error format.
    const got = await pollUntil(async () => {
      const r = await atisRetrieve(urlB, calleeSp, DEST, ORIG_UP);
      if (r.status !== 200) expect(r).toMatchObject({ status: 404, code: "NOT_FOUND" });
      return r.status === 200 ? r : undefined;
    }, Date.now() + 20_000);
    expect(got).toMatchObject({ passports: [passport] });
    expect(await atisRetrieve(urlA, calleeSp, DEST, ORIG_UP)).toMatchObject({
      status: 200,
      passports: [passport],
    });
  }, 60_000);

  it("no loop: what B takes as a republish is not re-published to A, while a publish at B is", async () => {
    const server = b as LocalServer;
    const sentBefore = events(server, "atis_republish_sent").length;
    // A republish at B, signed by A's own credential as A's queue does.
    const republished = await shakenPassport(pki.valid.privateKey, x5u, ORIG_REPUBLISHED, DEST);
    const res = await atisPublish(urlB, cpsA, DEST, ORIG_REPUBLISHED, [republished], "republish", {
      spc: "SPCA",
      iss: "SPCA",
    });
    expect(res.status, await res.clone().text()).toBe(201);
    expect(await atisRetrieve(urlB, calleeSp, DEST, ORIG_REPUBLISHED)).toMatchObject({
      status: 200,
      passports: [republished],
    });
    // Then a publish at B: that one B does pass on to A. Once it is at A, anything B had queued
    // before it would have been delivered too.
    const control = await shakenPassport(pki.valid.privateKey, x5u, ORIG_AT_B, DEST);
    expect((await atisPublish(urlB, pki.valid, DEST, ORIG_AT_B, [control])).status).toBe(201);
    const atA = await pollUntil(async () => {
      const r = await atisRetrieve(urlA, calleeSp, DEST, ORIG_AT_B);
      return r.status === 200 ? r : undefined;
    }, Date.now() + 20_000);
    expect(atA, server.output()).toMatchObject({ passports: [control] });
    expect(await atisRetrieve(urlA, calleeSp, DEST, ORIG_REPUBLISHED)).toMatchObject({
      status: 404,
      code: "NOT_FOUND",
    });
    // B sent exactly one republish since: the control.
    expect(events(server, "atis_republish_sent").length - sentBefore).toBe(1);
  }, 60_000);

  it("a republish from a credential that is not a peer's is refused (403 ATIS_PEER_UNKNOWN), nothing stored", async () => {
    const orig = canonicalTn("12025550105");
    const passport = await shakenPassport(pki.valid.privateKey, x5u, orig, DEST);
    // The carrier's own credential (SPC 709J) is valid, but no peer of B's.
    const res = await atisPublish(urlB, pki.valid, DEST, orig, [passport], "republish");
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ status: 403, code: "ATIS_PEER_UNKNOWN" });
    expect(await atisRetrieve(urlB, calleeSp, DEST, orig)).toMatchObject({ status: 404 });
  }, 30_000);
});
