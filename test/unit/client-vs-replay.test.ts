/**
 * Replay at the VS (issue 15 item 4; RFC 8816 §8.2 step 5, RFC 8224 §6.2 step 4): a PASSporT stored
 * once at the CPS verifies one call only; the verdict carries `origid`; `iat` freshness is judged at
 * the call time, not the store time (the CPS TTL runs from the store). Against the in-memory CPS
 * (client-fake-cps.ts); the real server runs the same flows in test/e2e/.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { CpsClient } from "../../src/client/cps-client.js";
import {
  type CalleeKey,
  MemoryReplayStore,
  type ReplayStore,
  VerificationService,
  type VerificationServiceOptions,
} from "../../src/client/vs.js";
import { CpsError } from "../../src/errors.js";
import { parseCertificateChain } from "../../src/stir/cert-parse.js";
import { generateRecipientKeyPair, sealPassport } from "../../src/stir/envelope.js";
import { createPassport } from "../../src/stir/passport.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { fakeCps } from "./client-fake-cps.js";

const ALICE = "+1 111 555 1111";
const BOB = "+2 222 555 2222";
const MALLORY = "+1 111 555 9999";
const X5U = "https://certs.example.test/alice.pem";

let pki: TestPki;

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: canonicalTn(ALICE) }] });
});

const resolveCertificate = async (url: string) => {
  if (url !== X5U) throw new CpsError("X5U_FETCH_FAILED", "unknown x5u");
  return parseCertificateChain(pki.valid.pem);
};

async function calleeKey(kid: string): Promise<{ key: CalleeKey; publicKey: Uint8Array }> {
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  return { key: { kid, privateKey: keyPair }, publicKey };
}

/**
 * Alice's side, reduced to what matters here (the AS itself is tested in client-as-vs.test.ts):
 * sign a SHAKEN PASSporT at `asNow`, seal one copy per given key, store each at the CPS.
 */
function placer(cps: ReturnType<typeof fakeCps>, keys: () => Uint8Array[], asNow?: () => number) {
  const client = new CpsClient({ baseUrl: cps.base, fetch: cps.fetch });
  return {
    async placeCall(input: { from: string; to: string; origid?: string }): Promise<string> {
      const to = canonicalTn(input.to);
      const jws = await createPassport(
        {
          x5u: X5U,
          ppt: "shaken",
          claims: {
            attest: "A",
            dest: { tn: [to] },
            iat: Math.floor(asNow?.() ?? Date.now() / 1000),
            orig: { tn: canonicalTn(input.from) },
            origid: input.origid ?? crypto.randomUUID(),
          },
        },
        pki.valid.privateKey,
      );
      for (const key of keys()) await client.store(to, await sealPassport(key, to, jws));
      return jws;
    },
  };
}

/** A CPS, Bob's key, Alice's placer (its clock `asNow`), and a VS factory. */
async function setup(asNow?: () => number) {
  const cps = fakeCps();
  const bob = await calleeKey("bob");
  let directory = [bob.publicKey];
  const as = placer(cps, () => directory, asNow);
  const rotateTo = (keys: Uint8Array[]) => {
    directory = keys;
  };
  const vsFor = (extra: Partial<VerificationServiceOptions> = {}) =>
    new VerificationService({
      keys: [bob.key],
      trustAnchors: [pki.root.certificate],
      resolveCertificate,
      cps: cps.base,
      fetch: cps.fetch,
      ...extra,
    });
  return { cps, as, bob, vsFor, rotateTo };
}

describe("replay: one stored PASSporT, several calls to the same callee", () => {
  it("the attack: one placement, three ringing calls; only the first verifies, the others are REPLAYED (step 5)", async () => {
    const { as, vsFor } = await setup();
    await as.placeCall({ from: ALICE, to: BOB });
    const vs = vsFor();
    const first = await vs.verifyCall({ to: BOB, calling: ALICE });
    const second = await vs.verifyCall({ to: BOB, calling: ALICE });
    const third = await vs.verifyCall({ to: BOB, calling: ALICE });
    expect(first.verdict).toBe("verified");
    for (const later of [second, third]) {
      expect(later.verdict).toBe("failed");
      expect(later.verified).toBeUndefined();
      expect(later.candidates).toHaveLength(1);
      expect(later.candidates[0]).toMatchObject({ ok: false, failure: { step: 5, code: "REPLAYED" } });
    }
  });

  it("a re-encoded ECDSA signature (s -> n - s, equally valid) of the same PASSporT is still REPLAYED", async () => {
    const { cps, as, bob, vsFor } = await setup();
    const jws = await as.placeCall({ from: ALICE, to: BOB });
    const vs = vsFor();
    expect((await vs.verifyCall({ to: BOB, calling: ALICE })).verdict).toBe("verified");
    // ES256 signatures are malleable: (r, n - s) verifies as well as (r, s). Whoever saw the PASSporT
    // (in band, or the callee's own side) can make a second valid copy with another signature part.
    const dot = jws.lastIndexOf(".");
    const sig = Buffer.from(jws.slice(dot + 1), "base64url");
    const n = BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    const s = BigInt(`0x${sig.subarray(32).toString("hex")}`);
    const flipped = Buffer.concat([
      sig.subarray(0, 32),
      Buffer.from((n - s).toString(16).padStart(64, "0"), "hex"),
    ]);
    const twin = `${jws.slice(0, dot)}.${flipped.toString("base64url")}`;
    expect(twin).not.toBe(jws);
    cps.stored.clear();
    await new CpsClient({ baseUrl: cps.base, fetch: cps.fetch }).store(
      canonicalTn(BOB),
      await sealPassport(bob.publicKey, canonicalTn(BOB), twin),
    );
    const again = await vs.verifyCall({ to: BOB, calling: ALICE });
    expect(again.candidates).toHaveLength(1);
    expect(again.candidates[0]?.passport).toBe(twin);
    expect(again.candidates[0]).toMatchObject({ ok: false, failure: { step: 5, code: "REPLAYED" } });
  });

  it("a replay cache shared by two VS instances (two devices of one callee) catches a replay across them", async () => {
    const { as, vsFor } = await setup();
    await as.placeCall({ from: ALICE, to: BOB });
    const shared = new MemoryReplayStore();
    expect((await vsFor({ replayStore: shared }).verifyCall({ to: BOB, calling: ALICE })).verdict).toBe(
      "verified",
    );
    const other = await vsFor({ replayStore: shared }).verifyCall({ to: BOB, calling: ALICE });
    expect(other.candidates[0]?.failure?.code).toBe("REPLAYED");
    // Separate caches do not see each other: why a deployment shares one.
    expect((await vsFor().verifyCall({ to: BOB, calling: ALICE })).verdict).toBe("verified");
  });

  it("allowForking: the same PASSporT verifies every fork of the call (RFC 8224 §6.2)", async () => {
    const { as, vsFor } = await setup();
    await as.placeCall({ from: ALICE, to: BOB });
    const vs = vsFor({ allowForking: true });
    for (let i = 0; i < 3; i++)
      expect((await vs.verifyCall({ to: BOB, calling: ALICE })).verdict).toBe("verified");
  });

  it("judging the same call again (same callId, e.g. a watcher) verifies again; another call does not", async () => {
    const { as, vsFor } = await setup();
    await as.placeCall({ from: ALICE, to: BOB });
    const vs = vsFor();
    const opened = await vs.open(BOB);
    expect((await vs.judge(opened, ALICE, { callId: "call-1" })).verdict).toBe("verified");
    expect((await vs.judge(opened, ALICE, { callId: "call-1" })).verdict).toBe("verified");
    expect((await vs.judge(opened, ALICE, { callId: "call-2" })).candidates[0]?.failure?.code).toBe(
      "REPLAYED",
    );
  });

  it("a failed check does not use up the PASSporT: a spoofed call first, then the genuine call verifies", async () => {
    const { as, vsFor } = await setup();
    await as.placeCall({ from: ALICE, to: BOB });
    const vs = vsFor();
    const spoof = await vs.verifyCall({ to: BOB, calling: MALLORY });
    expect(spoof.candidates[0]?.failure).toMatchObject({ step: 3, code: "ORIG_MISMATCH" });
    // A stale judgment (call time past the window) fails at step 5 and uses up nothing either.
    const late = await vs.verifyCall({ to: BOB, calling: ALICE, at: Date.now() / 1000 + 120 });
    expect(late.candidates[0]?.failure?.code).toBe("PASSPORT_STALE");
    expect((await vs.verifyCall({ to: BOB, calling: ALICE })).verdict).toBe("verified");
  });

  it("two PASSporTs for two calls from the same caller: each verifies one call, a third call finds none left", async () => {
    const { as, vsFor } = await setup();
    await as.placeCall({ from: ALICE, to: BOB });
    await as.placeCall({ from: ALICE, to: BOB });
    const vs = vsFor();
    const a = await vs.verifyCall({ to: BOB, calling: ALICE });
    const b = await vs.verifyCall({ to: BOB, calling: ALICE });
    expect([a.verdict, b.verdict]).toEqual(["verified", "verified"]);
    expect(a.verified?.passport).not.toBe(b.verified?.passport);
    const c = await vs.verifyCall({ to: BOB, calling: ALICE });
    expect(c.verdict).toBe("failed");
    expect(c.candidates.map((x) => x.failure?.code)).toEqual(["REPLAYED", "REPLAYED"]);
  });

  it("the replay entry outlives the freshness window only as long as needed", async () => {
    let now = Math.floor(Date.now() / 1000);
    const store = new MemoryReplayStore();
    const { as, vsFor } = await setup(() => now);
    await as.placeCall({ from: ALICE, to: BOB });
    const vs = vsFor({ replayStore: store, now: () => now });
    expect((await vs.verifyCall({ to: BOB, calling: ALICE })).verdict).toBe("verified");
    now += 60; // still inside the 60 s window: a replay is caught
    expect((await vs.verifyCall({ to: BOB, calling: ALICE })).candidates[0]?.failure?.code).toBe("REPLAYED");
    now += 5; // past the window: stale (step 5) whatever the cache holds
    expect((await vs.verifyCall({ to: BOB, calling: ALICE })).candidates[0]?.failure?.code).toBe(
      "PASSPORT_STALE",
    );
  });
});

describe("origid in the verdict (RFC 8588 §4)", () => {
  it("the verdict and its candidate carry the PASSporT's origid", async () => {
    const { as, vsFor } = await setup();
    const origid = "123e4567-e89b-12d3-a456-426655440000";
    await as.placeCall({ from: ALICE, to: BOB, origid });
    const result = await vsFor().verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("verified");
    expect(result.origid).toBe(origid);
    expect(result.verified?.origid).toBe(origid);
    expect(result.candidates[0]?.origid).toBe(origid);
  });
});

describe("iat freshness is judged at the call time, not at the store time", () => {
  it("stale at the call time though fresh when stored: PASSPORT_STALE (step 5)", async () => {
    const t0 = Math.floor(Date.now() / 1000);
    // Signed and stored at t0 (fresh then, and the CPS still serves it); the call rings at t0 + 90.
    const { as, vsFor } = await setup(() => t0);
    await as.placeCall({ from: ALICE, to: BOB });
    const result = await vsFor({ now: () => t0 + 1 }).verifyCall({ to: BOB, calling: ALICE, at: t0 + 90 });
    expect(result.at).toBe(t0 + 90);
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure).toMatchObject({ step: 5, code: "PASSPORT_STALE" });
  });

  it("fresh at the call time though judged later: verified (a Date is accepted too)", async () => {
    const t0 = Math.floor(Date.now() / 1000);
    const { as, vsFor } = await setup(() => t0);
    await as.placeCall({ from: ALICE, to: BOB });
    const vs = vsFor({ now: () => t0 + 300 });
    const result = await vs.verifyCall({ to: BOB, calling: ALICE, at: new Date((t0 + 10) * 1000) });
    expect(result.verdict).toBe("verified");
    expect(result.at).toBe(t0 + 10);
    // Without `at` the call time is the VS clock: 300 s after iat is stale.
    const fresh = await setup(() => t0);
    await fresh.as.placeCall({ from: ALICE, to: BOB });
    const late = await fresh.vsFor({ now: () => t0 + 300 }).verifyCall({ to: BOB, calling: ALICE });
    expect(late.candidates[0]?.failure?.code).toBe("PASSPORT_STALE");
  });
});

describe("rotation at the VS: every local key is tried", () => {
  it("a call sealed to the old key and one sealed to the new key both verify with both keys held", async () => {
    const { as, bob, vsFor, rotateTo } = await setup();
    await as.placeCall({ from: ALICE, to: BOB }); // sealed to the old key only
    const next = await calleeKey("bob-2");
    rotateTo([next.publicKey]);
    await as.placeCall({ from: ALICE, to: BOB }); // sealed to the new key only
    const vs = vsFor({ keys: [bob.key, next.key] });
    const a = await vs.verifyCall({ to: BOB, calling: ALICE });
    const b = await vs.verifyCall({ to: BOB, calling: ALICE });
    expect([a.verdict, b.verdict]).toEqual(["verified", "verified"]);
    expect(new Set([...(a.verified?.kids ?? []), ...(b.verified?.kids ?? [])])).toEqual(
      new Set(["bob", "bob-2"]),
    );
    // With only the new key, the old call's blob does not open: it needs the old key kept.
    const onlyNew = await vsFor({ keys: [next.key] }).open(BOB);
    expect([...onlyNew.passports.values()].map((p) => p.kids)).toEqual([["bob-2"]]);
  });
});

describe("MemoryReplayStore", () => {
  it("claims once per key until expiry, and stays bounded (oldest evicted, counted)", () => {
    const store: ReplayStore & { size: number; evicted: number } = new MemoryReplayStore({ maxEntries: 2 });
    expect(store.claim("a", "c1", 100, 0)).toBe("c1");
    expect(store.claim("a", "c2", 100, 50)).toBe("c1");
    expect(store.claim("a", "c2", 200, 100)).toBe("c2"); // expired at 100: free again
    expect(store.claim("b", "c3", 300, 100)).toBe("c3");
    expect(store.claim("c", "c4", 300, 100)).toBe("c4");
    expect(store.size).toBe(2);
    expect(store.evicted).toBe(1);
    expect(() => new MemoryReplayStore({ maxEntries: 0 })).toThrow(TypeError);
  });
});
