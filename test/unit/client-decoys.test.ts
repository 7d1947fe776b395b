/**
 * Decoy polling by the callee (RFC 8816 §6.2, §13; src/client/decoys.ts): fixed decoy pools, the
 * group's offsets (the real retrieval at a uniformly random rank among its decoys), the VS hook
 * (decoy retrievals are the real request to other numbers; the verdict is unchanged), background
 * groups, and `watch` decoy subscriptions. CPS-side measurements: `npm run privacy -- --only f`.
 */
import "reflect-metadata";
import { beforeAll, describe, expect, it } from "vitest";
import { prng } from "../../bench/lib/stats.mjs";
import { DecoyPlan, DecoyPoller } from "../../src/client/decoys.js";
import { VerificationService } from "../../src/client/vs.js";
import { type WebSocketLike, watch } from "../../src/client/watch.js";
import { parseCertificateChain } from "../../src/stir/cert-parse.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { fakeCps, fakeCpsAs } from "./client-fake-cps.js";

const ALICE = canonicalTn("+1 111 555 1111");
const BOB = canonicalTn("+2 222 555 2222");

let pki: TestPki;
let callees: TestCredential;

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: ALICE }] });
  callees = await pki.issue({ tnAuthList: [{ type: "one", tn: BOB }], subject: "callees" });
});

describe("DecoyPlan", () => {
  it("gives each number a fixed pool of distinct decoys with its prefix and length, never an owned number", () => {
    const own = ["12025550100", "12025550101"];
    const plan = new DecoyPlan({ own, perRetrieval: 5, random: prng(1) });
    const pool = plan.decoysFor(canonicalTn(own[0]!));
    expect(pool).toHaveLength(5);
    expect(new Set(pool).size).toBe(5);
    for (const d of pool) {
      expect(d).toMatch(/^1202555\d{4}$/);
      expect(own).not.toContain(d);
    }
    // Fixed: the owned number must not be the only one that recurs across retrievals.
    expect(plan.decoysFor(canonicalTn(own[0]!))).toEqual(pool);
    expect(
      plan
        .group(canonicalTn(own[0]!))
        .map((r) => r.tn)
        .slice(1),
    ).toEqual(pool);
  });

  it("takes explicit pools as given", () => {
    const plan = new DecoyPlan({ pools: { "12025550100": ["+1 303 555 0000"] } });
    expect(plan.decoysFor(canonicalTn("12025550100"))).toEqual(["13035550000"]);
  });

  it("starts every retrieval of a group at an independent uniform offset: the real one's rank is uniform", () => {
    const plan = new DecoyPlan({ perRetrieval: 3, spreadMs: 100, random: prng(2) });
    const ranks = [0, 0, 0, 0];
    const N = 8000;
    for (let i = 0; i < N; i++) {
      const g = plan.group(BOB);
      if (g.length !== 4 || g.some((r) => !(r.delayMs >= 0 && r.delayMs < 100))) throw new Error("bad group");
      const real = g.find((r) => r.real)!;
      ranks[g.filter((r) => r.delayMs < real.delayMs).length]!++;
    }
    // Each rank 1/4 (sd of a share ~0.5 %): a real retrieval sent first would make rank 0 always.
    for (const r of ranks) expect(Math.abs(r / N - 0.25)).toBeLessThan(0.025);
  });

  it("plans background groups at Poisson times only when asked and when it owns numbers", () => {
    expect(new DecoyPlan({ own: [BOB] }).nextBackgroundAt(0)).toBeUndefined();
    expect(new DecoyPlan({ backgroundPerHour: 6 }).nextBackgroundAt(0)).toBeUndefined();
    const plan = new DecoyPlan({ own: [BOB], backgroundPerHour: 6, random: prng(3) });
    let t = 0;
    for (let i = 0; i < 5000; i++) t = plan.nextBackgroundAt(t)!;
    expect(t / 5000).toBeGreaterThan(570_000); // mean gap 10 min
    expect(t / 5000).toBeLessThan(630_000);
  });

  it("refuses nonsense options", () => {
    expect(() => new DecoyPlan({ perRetrieval: -1 })).toThrow(TypeError);
    expect(() => new DecoyPlan({ spreadMs: -5 })).toThrow(TypeError);
    expect(() => new DecoyPoller({ own: [BOB] })).toThrow(TypeError); // no CPS
  });
});

describe("DecoyPoller with the VS", () => {
  it("retrieves the decoys with the real retrieval, the same request to other numbers; the verdict is unchanged", async () => {
    const cps = fakeCps({ signer: callees });
    const bob = await generateRecipientKeyPair();
    await cps.registerKey(BOB, "bob", bob.publicKey);
    const as = fakeCpsAs(cps, pki.valid, [pki.root.certificate]);
    await as.placeCall({ from: ALICE, to: BOB });
    const decoys = new DecoyPoller({
      own: [BOB],
      cps: cps.base,
      fetch: cps.fetch,
      perRetrieval: 3,
      spreadMs: 50,
    });
    const vs = new VerificationService({
      keys: [{ kid: "bob", privateKey: bob.keyPair }],
      trustAnchors: [pki.root.certificate],
      resolveCertificate: async () => parseCertificateChain(pki.valid.pem),
      cps: cps.base,
      fetch: cps.fetch,
      decoys,
    });
    const before = cps.log.length;
    const v = await vs.verifyCall({ to: BOB, calling: ALICE });
    await decoys.stop();
    expect(v.verdict).toBe("verified");
    const gets = cps.log.slice(before).filter((l) => l.startsWith("GET /cps/"));
    const pool = decoys.plan.decoysFor(BOB);
    expect(gets.sort()).toEqual([BOB, ...pool].map((n) => `GET /cps/${n}/ppts`).sort());
    expect(decoys.stats).toMatchObject({ realRetrievals: 1, decoyRetrievals: 3, failures: 0 });
    expect(decoys.stats.entries).toBeGreaterThanOrEqual(3); // the CPS answers every decoy with dummies
    expect(decoys.stats.delayMs).toBeLessThan(50);
  });

  it("given blobs (no retrieval), sends no decoys", async () => {
    const cps = fakeCps();
    const bob = await generateRecipientKeyPair();
    const decoys = new DecoyPoller({ own: [BOB], cps: cps.base, fetch: cps.fetch });
    const vs = new VerificationService({
      keys: [{ kid: "bob", privateKey: bob.keyPair }],
      trustAnchors: [pki.root.certificate],
      cps: cps.base,
      fetch: cps.fetch,
      decoys,
    });
    await vs.open(BOB, []);
    await decoys.stop();
    expect(cps.log).toEqual([]);
  });

  it("sends background groups (the owned number and its decoys) while started", async () => {
    const cps = fakeCps();
    const decoys = new DecoyPoller({
      own: [BOB],
      cps: cps.base,
      fetch: cps.fetch,
      perRetrieval: 2,
      spreadMs: 10,
      backgroundPerHour: 36_000,
    });
    decoys.start();
    await new Promise((r) => setTimeout(r, 600));
    await decoys.stop();
    const s = decoys.stats;
    expect(s.backgroundGroups).toBeGreaterThan(1);
    expect(s.backgroundRetrievals).toBe(3 * s.backgroundGroups);
    expect(cps.log.filter((l) => l === `GET /cps/${BOB}/ppts`)).toHaveLength(s.backgroundGroups);
    const n = cps.log.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(cps.log.length).toBe(n);
  });
});

describe("watch with decoy subscriptions", () => {
  /** A socket that records its URL and closes when told. */
  function sockets() {
    const opened: string[] = [];
    const closed: string[] = [];
    const connect = (url: string): WebSocketLike => {
      opened.push(url);
      return {
        addEventListener: () => undefined,
        send: () => undefined,
        close: () => {
          closed.push(url);
        },
      };
    };
    return { opened, closed, connect };
  }

  it("subscribes to the decoys too, at a random position, and closes them with the watch", async () => {
    const positions = new Set<number>();
    for (let i = 0; i < 30; i++) {
      const s = sockets();
      const decoys = ["12025550001", "12025550002", "12025550003"].map((tn) => ({ tn }));
      const w = watch({
        cps: "https://cps.test",
        target: { tn: "12025550100" },
        decoys,
        onFrame: () => undefined,
        connect: s.connect,
        pingIntervalMs: 0,
      });
      await new Promise((r) => setTimeout(r, 5));
      expect([...s.opened].sort()).toEqual(
        ["12025550001", "12025550002", "12025550003", "12025550100"].map(
          (n) => `wss://cps.test/cps/${n}/subscribe`,
        ),
      );
      w.close();
      await w.done;
      expect(s.closed).toHaveLength(4);
      positions.add(s.opened.indexOf("wss://cps.test/cps/12025550100/subscribe"));
    }
    expect(positions.size).toBeGreaterThan(1);
  });

  it("refuses decoys with an authorized subscription", () => {
    expect(() =>
      watch({
        cps: "https://cps.test",
        target: { tn: "12025550100" },
        decoys: [{ tn: "12025550001" }],
        authorization: () => "Bearer x",
        onFrame: () => undefined,
      }),
    ).toThrow(TypeError);
  });
});
