/**
 * Diverted calls at the VS (issue 17 item 1; RFC 8946 `div` §3 and `div-o` §5, RFC 8816 §6.2 last
 * paragraph): Alice calls Carol, Carol's service forwards the call to Bob, Bob's VS verifies the chain.
 * Against the in-memory CPS (client-fake-cps.ts); test/e2e/diversion.test.ts runs the same over
 * `wrangler dev`. The first three tests are the three wrong verdicts of the issue.
 */
import { CompactSign } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { AuthenticationService } from "../../src/client/as.js";
import { CpsClient } from "../../src/client/cps-client.js";
import { Discovery } from "../../src/client/discovery.js";
import { DivertingService } from "../../src/client/divert.js";
import {
  type CalleeKey,
  MemoryReplayStore,
  VerificationService,
  type VerificationServiceOptions,
} from "../../src/client/vs.js";
import { CpsError } from "../../src/errors.js";
import {
  decodeEnvelope,
  generateRecipientKeyPair,
  openPassport,
  sealPassport,
} from "../../src/stir/envelope.js";
import { FEEDBACK_TAG_HEADER } from "../../src/stir/feedback.js";
import { createPassport } from "../../src/stir/passport.js";
import { TOKEN_HEADER } from "../../src/stir/storage-token.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { type CanonicalTn, canonicalTn } from "../../src/stir/tn.js";
import { x5uUrl as x5u, x5uMap } from "../helpers/x5u.js";
import { fakeCps } from "./client-fake-cps.js";

const ALICE = canonicalTn("+1 111 555 1111");
const CAROL = canonicalTn("+3 333 555 3333");
const BOB = canonicalTn("+2 222 555 2222");
const DAVE = canonicalTn("+4 444 555 4444");
const DIV_PPTS = ["shaken", "div", "div-o"];

let pki: TestPki;
/** Signs the callees' key records (covers Carol, Bob, Dave). */
let calleeCred: TestCredential;
/** Carol's and Bob's forwarding services: each covers only its own number. */
let carolCred: TestCredential;
let bobCred: TestCredential;
const { signing: credential, resolveCertificate } = x5uMap();

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: ALICE }] });
  calleeCred = await pki.issue({
    tnAuthList: [CAROL, BOB, DAVE].map((tn) => ({ type: "one" as const, tn })),
    subject: "callees",
  });
  carolCred = await pki.issue({ tnAuthList: [{ type: "one", tn: CAROL }], subject: "carol-forwarding" });
  bobCred = await pki.issue({ tnAuthList: [{ type: "one", tn: BOB }], subject: "bob-forwarding" });
  credential("alice", pki.valid);
});

async function calleeKey(kid: string): Promise<{ key: CalleeKey; publicKey: Uint8Array }> {
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  return { key: { kid, privateKey: keyPair }, publicKey };
}

/** A CPS with keys for Carol, Bob and Dave; Alice's AS; VS and diverting-service factories. */
async function world() {
  const cps = fakeCps({ signer: calleeCred });
  const discovery = new Discovery({ bootstrap: cps.base, fetch: cps.fetch });
  const keys = {
    [CAROL]: await calleeKey("carol"),
    [BOB]: await calleeKey("bob"),
    [DAVE]: await calleeKey("dave"),
  };
  for (const [tn, k] of Object.entries(keys)) await cps.registerKey(tn, k.key.kid, k.publicKey);
  const as = new AuthenticationService({
    credential: credential("alice", pki.valid),
    trustAnchors: [pki.root.certificate],
    resolveCertificate,
    discovery,
    fetch: cps.fetch,
  });
  const vsFor = (tn: string, extra: Partial<VerificationServiceOptions> = {}) =>
    new VerificationService({
      keys: [(keys[tn] as { key: CalleeKey }).key],
      trustAnchors: [pki.root.certificate],
      resolveCertificate,
      cps: cps.base,
      fetch: cps.fetch,
      supportedPpt: DIV_PPTS,
      ...extra,
    });
  const divertingService = (name: string, cred: TestCredential) =>
    new DivertingService({
      credential: credential(name, cred),
      discovery,
      trustAnchors: [pki.root.certificate],
      resolveCertificate,
      fetch: cps.fetch,
    });
  /** Seals `passports` to `tn`'s key and stores them (a storer that is not a DivertingService). */
  const storeFor = async (tn: CanonicalTn, passports: string[]) => {
    const client = new CpsClient({ baseUrl: cps.base, fetch: cps.fetch });
    const { publicKey } = keys[tn] as { publicKey: Uint8Array };
    for (const p of passports) await client.store(tn, await sealPassport(publicKey, tn, p));
  };
  return { cps, as, vsFor, divertingService, storeFor, keys, discovery };
}

const now = () => Math.floor(Date.now() / 1000);

/** Alice's original PASSporT for a call to `to`. */
function original(to: string, iat = now()): Promise<string> {
  return createPassport(
    {
      x5u: x5u("alice"),
      ppt: "shaken",
      claims: { attest: "A", dest: { tn: [to] }, iat, orig: { tn: ALICE }, origid: "o-1" },
    },
    pki.valid.privateKey,
  );
}

/** A diversion PASSporT signed as written (no shape check: attacks need malformed ones too). */
async function rawDiv(
  name: string,
  cred: TestCredential,
  ppt: "div" | "div-o",
  claims: Record<string, unknown>,
): Promise<string> {
  credential(name, cred);
  const header = { alg: "ES256", ppt, typ: "passport", x5u: x5u(name) };
  return new CompactSign(
    new TextEncoder().encode(JSON.stringify({ iat: now(), orig: { tn: ALICE }, ...claims })),
  )
    .setProtectedHeader(header)
    .sign(cred.privateKey);
}

describe("the three wrong verdicts of issue 17, item 1", () => {
  it("(1) a call Alice -> Carol forwarded to Bob: Bob's VS verifies it (was no-passport)", async () => {
    const { as, vsFor, divertingService } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    // Forwarding without any out-of-band step leaves Bob with nothing: sealed to Carol, under Carol.
    expect((await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE })).verdict).toBe("no-passport");
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    expect(atCarol.verdict).toBe("verified");
    const diverted = await divertingService("carol-fwd", carolCred).divert({ call: atCarol, to: BOB });
    expect(diverted.kind).toBe("div-o");
    const atBob = await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE });
    expect(atBob.verdict).toBe("verified");
    expect(atBob.diversion?.via).toEqual([CAROL]);
    expect(atBob.diversion?.links.map((l) => l.kind)).toEqual(["div-o", "original"]);
    expect(atBob.verified?.signer).toContain("carol-forwarding");
    expect(atBob.origid).toBe(atCarol.origid);
  });

  it("(2) a properly signed div (Carol's credential, div = Carol) with the original: verified (was step 4)", async () => {
    const { vsFor, storeFor } = await world();
    const p0 = await original(CAROL);
    const div = await rawDiv("carol-fwd", carolCred, "div", { dest: { tn: [BOB] }, div: { tn: CAROL } });
    await storeFor(BOB, [div, p0]);
    const result = await vsFor(BOB, { supportedPpt: ["shaken", "div"] }).verifyCall({
      to: BOB,
      calling: ALICE,
    });
    expect(result.candidates.find((c) => c.passport === div)?.failure).toBeUndefined();
    expect(result.verdict).toBe("verified");
    expect(result.verified?.passport).toBe(div);
    expect(result.diversion?.via).toEqual([CAROL]);
  });

  it("(3) a div whose div claim is the nonsense 12345: failed (was verified)", async () => {
    const { vsFor, storeFor } = await world();
    // Signed by a credential covering orig: the only check a plain PASSporT gets at step 4.
    const bare = await rawDiv("alice", pki.valid, "div", { dest: { tn: [BOB] }, div: "12345" });
    await storeFor(BOB, [bare]);
    const result = await vsFor(BOB, { supportedPpt: ["shaken", "div"] }).verifyCall({
      to: BOB,
      calling: ALICE,
    });
    expect(result.verdict).toBe("failed");
    expect(result.candidates[0]?.failure).toMatchObject({ step: 2, code: "PASSPORT_CLAIMS" });
  });

  it("(3b) a div claim {tn: 12345} signed by the caller's credential: failed, it does not cover 12345", async () => {
    const { vsFor, storeFor } = await world();
    const bare = await rawDiv("alice", pki.valid, "div", { dest: { tn: [BOB] }, div: { tn: "12345" } });
    await storeFor(BOB, [bare, await original(CAROL)]);
    const result = await vsFor(BOB, { supportedPpt: ["shaken", "div"] }).verifyCall({
      to: BOB,
      calling: ALICE,
    });
    expect(result.verdict).toBe("failed");
    const failure = result.candidates.find((c) => c.passport === bare)?.failure;
    // Alice's credential does not cover 12345 (step 4) before any predecessor is looked for.
    expect(failure).toMatchObject({ step: 4, code: "CERT_NOT_AUTHORISED", link: 0 });
  });

  it("(3c) a div claim {tn: 12345} signed by a credential that covers 12345: failed, DIVERSION_UNLINKED", async () => {
    const { vsFor, storeFor } = await world();
    const holder = await pki.issue({
      tnAuthList: [{ type: "one", tn: "12345" }],
      subject: "nonsense-holder",
    });
    const div = await rawDiv("nonsense", holder, "div", { dest: { tn: [BOB] }, div: { tn: "12345" } });
    await storeFor(BOB, [div, await original(CAROL)]);
    const result = await vsFor(BOB, { supportedPpt: ["shaken", "div"] }).verifyCall({
      to: BOB,
      calling: ALICE,
    });
    expect(result.verdict).toBe("failed");
    expect(result.candidates.find((c) => c.passport === div)?.failure).toMatchObject({
      step: 3,
      code: "DIVERSION_UNLINKED",
      link: 0,
    });
  });
});

describe("diversion chains (RFC 8946)", () => {
  it("div: the original is stored beside the diversion, sealed to Bob; both checked", async () => {
    const { as, vsFor, divertingService, cps } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    const d = await divertingService("carol-fwd", carolCred).divert({ call: atCarol, to: BOB, kind: "div" });
    expect(d.passports).toHaveLength(2);
    expect(cps.stored.get(BOB)).toHaveLength(2);
    const atBob = await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE });
    expect(atBob.verdict).toBe("verified");
    expect(atBob.diversion?.links.map((l) => [l.kind, l.from, l.dest])).toEqual([
      ["div", CAROL, [BOB]],
      ["original", undefined, [CAROL]],
    ]);
    // The original names Carol, not Bob: reported as a link of the chain, not as a misdirected PASSporT.
    expect(atBob.candidates.find((c) => c.passport === d.passports[1])?.failure?.code).toBe("DIVERSION_LINK");
  });

  it("two diversions, Alice -> Carol -> Bob -> Dave: Dave sees the whole path", async () => {
    const { as, vsFor, divertingService } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    await divertingService("carol-fwd", carolCred).divert({ call: atCarol, to: BOB });
    const atBob = await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE });
    const second = await divertingService("bob-fwd", bobCred).divert({ call: atBob, to: DAVE });
    // A div-o nesting a div-o nesting the original does not fit one envelope: the second is a div.
    expect(second.kind).toBe("div");
    expect(second.passports).toHaveLength(2);
    const atDave = await vsFor(DAVE).verifyCall({ to: DAVE, calling: ALICE });
    expect(atDave.verdict).toBe("verified");
    expect(atDave.diversion?.via).toEqual([CAROL, BOB]);
    expect(atDave.diversion?.links.map((l) => l.kind)).toEqual(["div", "div-o", "original"]);
    expect(atDave.diversion?.links.map((l) => l.signer?.includes("forwarding") ?? false)).toEqual([
      true,
      true,
      false,
    ]);
  });

  it("two plain div diversions: every PASSporT stored beside, chain rebuilt from the pool", async () => {
    const { as, vsFor, divertingService, cps } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    await divertingService("carol-fwd", carolCred).divert({ call: atCarol, to: BOB, kind: "div" });
    const atBob = await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE });
    await divertingService("bob-fwd", bobCred).divert({ call: atBob, to: DAVE, kind: "div" });
    expect(cps.stored.get(DAVE)).toHaveLength(3);
    const atDave = await vsFor(DAVE).verifyCall({ to: DAVE, calling: ALICE });
    expect(atDave.verdict).toBe("verified");
    expect(atDave.diversion?.via).toEqual([CAROL, BOB]);
  });

  it("an explicit div-o that cannot fit an envelope is refused, nothing stored", async () => {
    const { as, vsFor, divertingService, cps } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    await divertingService("carol-fwd", carolCred).divert({ call: atCarol, to: BOB });
    const atBob = await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE });
    await expect(
      divertingService("bob-fwd", bobCred).divert({ call: atBob, to: DAVE, kind: "div-o" }),
    ).rejects.toMatchObject({ code: "PASSPORT_TOO_LARGE" });
    expect(cps.stored.get(DAVE)).toBeUndefined();
  });

  it("with diversion not enabled (default supportedPpt), a diversion fails step 2 as unsupported", async () => {
    const { vsFor, storeFor } = await world();
    const div = await rawDiv("carol-fwd", carolCred, "div", { dest: { tn: [BOB] }, div: { tn: CAROL } });
    await storeFor(BOB, [div, await original(CAROL)]);
    const result = await vsFor(BOB, { supportedPpt: ["shaken"] }).verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("failed");
    expect(result.candidates.find((c) => c.passport === div)?.failure).toMatchObject({
      step: 2,
      code: "PASSPORT_PPT_UNSUPPORTED",
    });
  });
});

describe("attacks on the chain (each refused, with the link and step that refused it)", () => {
  it.each([
    [
      "a div signed by a credential that does not cover the number diverted from",
      async () => [
        await rawDiv("bob-fwd", bobCred, "div", { dest: { tn: [BOB] }, div: { tn: CAROL } }),
        await original(CAROL),
      ],
      { step: 4, code: "CERT_NOT_AUTHORISED", link: 0 },
    ],
    [
      "a div whose orig differs from the original's (a caller swapped in)",
      async () => [
        await rawDiv("carol-fwd", carolCred, "div", { dest: { tn: [BOB] }, div: { tn: CAROL } }),
        await createPassport(
          {
            x5u: x5u("alice"),
            ppt: "shaken",
            claims: {
              attest: "A",
              dest: { tn: [CAROL] },
              iat: now(),
              orig: { tn: "11115551112" },
              origid: "x",
            },
          },
          pki.valid.privateKey,
        ),
      ],
      { step: 3, code: "DIVERSION_UNLINKED", link: 0 },
    ],
    [
      "a div whose div is not a destination of any PASSporT opened",
      async () => [
        await rawDiv("carol-fwd", carolCred, "div", { dest: { tn: [BOB] }, div: { tn: CAROL } }),
        await original(DAVE),
      ],
      { step: 3, code: "DIVERSION_UNLINKED", link: 0 },
    ],
    [
      "a div alone (the original withheld)",
      async () => [await rawDiv("carol-fwd", carolCred, "div", { dest: { tn: [BOB] }, div: { tn: CAROL } })],
      { step: 3, code: "DIVERSION_UNLINKED", link: 0 },
    ],
    [
      "a div-o nesting a stale original",
      async () => [
        await rawDiv("carol-fwd", carolCred, "div-o", {
          dest: { tn: [BOB] },
          div: { tn: CAROL },
          opt: await original(CAROL, now() - 600),
        }),
      ],
      { step: 5, code: "PASSPORT_STALE", link: 1 },
    ],
    [
      "a div-o nesting an original with a tampered signature",
      async () => {
        const p0 = await original(CAROL);
        const bad = `${p0.slice(0, -4)}${p0.endsWith("AAAA") ? "BBBB" : "AAAA"}`;
        return [
          await rawDiv("carol-fwd", carolCred, "div-o", {
            dest: { tn: [BOB] },
            div: { tn: CAROL },
            opt: bad,
          }),
        ];
      },
      { step: 6, code: "PASSPORT_SIGNATURE", link: 1 },
    ],
    [
      "a div-o whose opt is for another number than its div",
      async () => [
        await rawDiv("carol-fwd", carolCred, "div-o", {
          dest: { tn: [BOB] },
          div: { tn: CAROL },
          opt: await original(DAVE),
        }),
      ],
      { step: 3, code: "DIVERSION_UNLINKED", link: 0 },
    ],
    [
      "a div-o whose opt is not a PASSporT",
      async () => [
        await rawDiv("carol-fwd", carolCred, "div-o", {
          dest: { tn: [BOB] },
          div: { tn: CAROL },
          opt: "a.b",
        }),
      ],
      { step: 2, code: "PASSPORT_CLAIMS", link: undefined },
    ],
    [
      "a stale div around a fresh original",
      async () => [
        await rawDiv("carol-fwd", carolCred, "div-o", {
          dest: { tn: [BOB] },
          div: { tn: CAROL },
          iat: now() - 600,
          opt: await original(CAROL),
        }),
      ],
      { step: 5, code: "PASSPORT_STALE", link: 0 },
    ],
  ])("%s", async (_name, build, expected) => {
    const { vsFor, storeFor } = await world();
    const passports = await build();
    await storeFor(BOB, passports);
    const result = await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE });
    expect(result.verdict).toBe("failed");
    const { link, ...rest } = expected;
    const failure = result.candidates.find((c) => c.passport === passports[0])?.failure;
    expect(failure).toMatchObject(rest);
    expect(failure?.link).toBe(link);
  });

  it("a chain longer than maxDiversions: DIVERSION_TOO_LONG", async () => {
    const { as, vsFor, divertingService } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    await divertingService("carol-fwd", carolCred).divert({ call: atCarol, to: BOB });
    const atBob = await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE });
    await divertingService("bob-fwd", bobCred).divert({ call: atBob, to: DAVE });
    const atDave = await vsFor(DAVE, { maxDiversions: 1 }).verifyCall({ to: DAVE, calling: ALICE });
    expect(atDave.verdict).toBe("failed");
    expect(atDave.candidates.map((c) => c.failure?.code)).toContain("DIVERSION_TOO_LONG");
  });

  it("the diverting service refuses a number its credential does not cover, and stores nothing", async () => {
    const { as, vsFor, divertingService, cps } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    await expect(
      divertingService("bob-fwd", bobCred).divert({ call: atCarol, to: DAVE }),
    ).rejects.toMatchObject({
      code: "NOT_AUTHORITATIVE",
    });
    expect(cps.stored.get(DAVE)).toBeUndefined();
  });
});

describe("replay (RFC 8816 §8.2 step 5) with diversion", () => {
  it("a verified chain claims its PASSporTs: the same chain for a second call is REPLAYED", async () => {
    const { as, vsFor, divertingService } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    await divertingService("carol-fwd", carolCred).divert({ call: atCarol, to: BOB, kind: "div" });
    const bob = vsFor(BOB);
    const first = await bob.verifyCall({ to: BOB, calling: ALICE, callId: "call-1" });
    expect(first.verdict).toBe("verified");
    // The same call judged again (a retry) still verifies; another call does not.
    expect((await bob.verifyCall({ to: BOB, calling: ALICE, callId: "call-1" })).verdict).toBe("verified");
    const second = await bob.verifyCall({ to: BOB, calling: ALICE, callId: "call-2" });
    expect(second.verdict).toBe("failed");
    expect(second.candidates.find((c) => c.passport === first.verified?.passport)?.failure).toMatchObject({
      step: 5,
      code: "REPLAYED",
    });
  });

  it("a second diversion of the same original to the same number is REPLAYED (the original is claimed)", async () => {
    const { as, vsFor, divertingService } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    const carolFwd = divertingService("carol-fwd", carolCred);
    const bob = vsFor(BOB);
    const d1 = await carolFwd.divert({ call: atCarol, to: BOB });
    expect((await bob.verifyCall({ to: BOB, calling: ALICE })).verdict).toBe("verified");
    // Carol's service (or anyone holding its key) signs another diversion of the same call.
    expect(d1.passports).toHaveLength(1);
    await carolFwd.divert({
      passports: [atCarol.verified?.passport ?? ""],
      from: CAROL,
      to: BOB,
      kind: "div",
    });
    const again = await bob.verifyCall({ to: BOB, calling: ALICE });
    expect(again.verdict).toBe("failed");
    expect(again.candidates.map((c) => c.failure?.code)).toContain("REPLAYED");
  });

  it("one replay store shared by Carol's and Bob's VS: the forwarded call still verifies at Bob", async () => {
    const { as, vsFor, divertingService } = await world();
    const shared = new MemoryReplayStore();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL, { replayStore: shared }).verifyCall({ to: CAROL, calling: ALICE });
    expect(atCarol.verdict).toBe("verified");
    await divertingService("carol-fwd", carolCred).divert({ call: atCarol, to: BOB, kind: "div" });
    const atBob = await vsFor(BOB, { replayStore: shared }).verifyCall({ to: BOB, calling: ALICE });
    expect(atBob.verdict).toBe("verified");
  });
});

describe("feedback safety (RFC 8816 §7.5): the original stored beside a div is never a bogus DEST_MISMATCH", () => {
  it("even with diversion not enabled, it is DIVERSION_LINK (not reportable), the div unsupported", async () => {
    const { vsFor, storeFor } = await world();
    const p0 = await original(CAROL);
    const div = await rawDiv("carol-fwd", carolCred, "div", { dest: { tn: [BOB] }, div: { tn: CAROL } });
    await storeFor(BOB, [div, p0]);
    const result = await vsFor(BOB, { supportedPpt: ["shaken"] }).verifyCall({ to: BOB, calling: ALICE });
    expect(result.candidates.find((c) => c.passport === p0)?.failure?.code).toBe("DIVERSION_LINK");
    expect(result.candidates.find((c) => c.passport === div)?.failure?.code).toBe("PASSPORT_PPT_UNSUPPORTED");
  });

  it("a PASSporT for another number with no diversion following it is still DEST_MISMATCH", async () => {
    const { vsFor, storeFor } = await world();
    const p0 = await original(CAROL);
    await storeFor(BOB, [p0]);
    const result = await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE });
    expect(result.candidates[0]?.failure?.code).toBe("DEST_MISMATCH");
  });
});

describe("review F2: work per judgement and replay of the original", () => {
  const X = canonicalTn("+5 555 555 5555");
  const Y = canonicalTn("+6 666 555 6666");
  /** An attacker's own credential, for its own numbers X and Y only. */
  let xyCred: TestCredential;
  beforeAll(async () => {
    xyCred = await pki.issue({
      tnAuthList: [X, Y].map((tn) => ({ type: "one" as const, tn })),
      subject: "attacker",
    });
  });

  /**
   * Bob's certificate resolutions, one per link check that reaches step 4 (a check the VS did not
   * memoise). Past 500 it fails every fetch, so the unfixed search ends instead of running for minutes.
   */
  function countingResolver() {
    let n = 0;
    return {
      count: () => n,
      resolveCertificate: async (url: string) => {
        n++;
        if (n > 500) throw new CpsError("X5U_FETCH_FAILED", "test bound reached");
        return resolveCertificate(url);
      },
    };
  }

  it("N=40 diversions naming their own div number in dest ([Bob, X], div X): refused, no link check", async () => {
    const { vsFor, storeFor } = await world();
    const junk: string[] = [];
    for (let i = 0; i < 40; i++) {
      junk.push(
        await rawDiv("xy", xyCred, "div", { dest: { tn: [BOB, X] }, div: { tn: X }, iat: now() - i }),
      );
    }
    await storeFor(BOB, junk);
    const counter = countingResolver();
    const result = await vsFor(BOB, { resolveCertificate: counter.resolveCertificate }).verifyCall({
      to: BOB,
      calling: ALICE,
    });
    expect(result.verdict).toBe("failed");
    expect(result.candidates).toHaveLength(40);
    for (const c of result.candidates) {
      expect(c.failure).toMatchObject({ step: 3, code: "DIVERSION_UNLINKED", link: 0 });
    }
    expect(counter.count()).toBe(0);
  });

  it("N=40 diversions linking each other through X and Y: each checked once, the genuine chain still verifies", async () => {
    const { vsFor, storeFor } = await world();
    const junk: string[] = [];
    for (let i = 0; i < 20; i++) {
      junk.push(
        await rawDiv("xy", xyCred, "div", { dest: { tn: [BOB, Y] }, div: { tn: X }, iat: now() - i }),
      );
      junk.push(
        await rawDiv("xy", xyCred, "div", { dest: { tn: [BOB, X] }, div: { tn: Y }, iat: now() - i }),
      );
    }
    const genuine = await rawDiv("carol-fwd", carolCred, "div", { dest: { tn: [BOB] }, div: { tn: CAROL } });
    await storeFor(BOB, [...junk, genuine, await original(CAROL)]);
    const counter = countingResolver();
    const result = await vsFor(BOB, { resolveCertificate: counter.resolveCertificate }).verifyCall({
      to: BOB,
      calling: ALICE,
    });
    expect(result.verdict).toBe("verified");
    expect(result.verified?.passport).toBe(genuine);
    // 40 junk PASSporTs, the genuine div and its original: one check each, whatever the paths.
    expect(counter.count()).toBeLessThanOrEqual(42);
    for (const c of result.candidates.filter((c) => junk.includes(c.passport))) {
      expect(c.failure?.code).toBe("DIVERSION_UNLINKED");
    }
  });

  /** P names Bob and Carol; D diverts it from Carol to Bob: both PASSporTs stored for Bob. */
  async function directAndChain(order: "direct-first" | "chain-first") {
    const { vsFor, storeFor } = await world();
    const p = await createPassport(
      {
        x5u: x5u("alice"),
        ppt: "shaken",
        claims: { attest: "A", dest: { tn: [BOB, CAROL] }, iat: now(), orig: { tn: ALICE }, origid: "o-2" },
      },
      pki.valid.privateKey,
    );
    const d = await rawDiv("carol-fwd", carolCred, "div", { dest: { tn: [BOB] }, div: { tn: CAROL } });
    await storeFor(BOB, order === "direct-first" ? [p, d] : [d, p]);
    return { p, d, bob: vsFor(BOB) };
  }

  it("an original verified directly at Bob cannot verify a second call inside a chain at Bob", async () => {
    const { p, bob } = await directAndChain("direct-first");
    const first = await bob.verifyCall({ to: BOB, calling: ALICE, callId: "call-1" });
    expect(first.verified?.passport).toBe(p);
    const second = await bob.verifyCall({ to: BOB, calling: ALICE, callId: "call-2" });
    expect(second.verdict).toBe("failed");
    expect(second.candidates.map((c) => c.failure?.code)).toEqual(["REPLAYED", "REPLAYED"]);
  });

  it("an original used inside a chain at Bob cannot then verify a second call directly at Bob", async () => {
    const { d, bob } = await directAndChain("chain-first");
    const first = await bob.verifyCall({ to: BOB, calling: ALICE, callId: "call-1" });
    expect(first.verified?.passport).toBe(d);
    const second = await bob.verifyCall({ to: BOB, calling: ALICE, callId: "call-2" });
    expect(second.verdict).toBe("failed");
    expect(second.candidates.map((c) => c.failure?.code)).toEqual(["REPLAYED", "REPLAYED"]);
    // The same call judged again still verifies (a retry holds every key it claimed).
    expect((await bob.verifyCall({ to: BOB, calling: ALICE, callId: "call-1" })).verdict).toBe("verified");
  });
});

describe("review F2: feedback tags of a plain div's stores (RFC 8816 §7.5)", () => {
  it("the original stored beside a div carries no feedback tag (its dest is the number diverted from); the div does", async () => {
    const { as, vsFor, cps, keys, discovery } = await world();
    await as.placeCall({ from: ALICE, to: CAROL });
    const atCarol = await vsFor(CAROL).verifyCall({ to: CAROL, calling: ALICE });
    // Every store at Bob's number: its feedback tag header and the PASSporT it holds (opened with Bob's key).
    const stores: { tag: string | null; body: string }[] = [];
    const recording: typeof cps.fetch = async (input, init) => {
      const request = new Request(input, init);
      if (request.method === "POST" && new URL(request.url).pathname === `/cps/${BOB}/ppts`) {
        stores.push({ tag: request.headers.get(FEEDBACK_TAG_HEADER), body: await request.clone().text() });
      }
      return cps.fetch(request);
    };
    const carolFwd = new DivertingService({
      credential: credential("carol-fwd", carolCred),
      discovery,
      trustAnchors: [pki.root.certificate],
      resolveCertificate,
      fetch: recording,
      // Tokened stores (the fake CPS takes any token): only those carry a tag.
      tokens: { headersForStore: async () => ({ [TOKEN_HEADER]: "t", "CPS-Token-Signature": "s" }) },
    });
    const diverted = await carolFwd.divert({ call: atCarol, to: BOB, kind: "div" });
    expect(diverted.passports).toHaveLength(2);
    const bobKey = (keys[BOB] as { key: CalleeKey }).key.privateKey;
    const tagged = new Map<string, (string | null)[]>();
    for (const s of stores) {
      const passport = await openPassport(bobKey, BOB, decodeEnvelope(s.body));
      tagged.set(passport, [...(tagged.get(passport) ?? []), s.tag]);
    }
    expect(tagged.get(diverted.passport)).toEqual([expect.any(String)]);
    expect(tagged.get(diverted.passports[1] as string)).toEqual([null]);
    // Bob's VS still verifies the call from what was stored.
    expect((await vsFor(BOB).verifyCall({ to: BOB, calling: ALICE })).verdict).toBe("verified");
  });
});
