/**
 * Several CPSes per number (RFC 8816 §10) in the client library: discovery's `cpses`, the AS storing a
 * fresh seal at each CPS under a store policy, the VS retrieving from each and merging, and the
 * deadline past which a slow or down CPS no longer holds the call or the verdict. Three in-memory
 * CPSes (client-fake-cps.ts) behind one router; a "down" CPS refuses connections and a "silent" one
 * never answers (test doubles for misbehaving peers). The same runs against three `wrangler dev`
 * instances in test/e2e/several-cps.test.ts.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { AuthenticationService } from "../../src/client/as.js";
import type { FetchLike } from "../../src/client/cps-client.js";
import { checkServiceUrls, Discovery } from "../../src/client/discovery.js";
import { CpsUnavailableError, StirClientError } from "../../src/client/errors.js";
import { checkStorePolicy, requiredStores, settleUntil, tokensPerCps } from "../../src/client/multi-cps.js";
import type { StoreTokenSource } from "../../src/client/store-tokens.js";
import { type CalleeKey, VerificationService } from "../../src/client/vs.js";
import { CpsError } from "../../src/errors.js";
import { parseCertificateChain } from "../../src/stir/cert-parse.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type FakeCps, fakeCps } from "./client-fake-cps.js";

const ALICE = "+1 111 555 1111";
const BOB = "+2 222 555 2222";
const ALICE_TN = canonicalTn(ALICE);
const BOB_TN = canonicalTn(BOB);
const URLS = ["https://cps-a.test", "https://cps-b.test", "https://cps-c.test"] as const;
const X5U = "https://certs.example.test/alice.pem";

let pki: TestPki;
let calleeCred: TestCredential;

type Mode = "up" | "down" | "silent" | { slowMs: number };

/**
 * Three fake CPSes at three origins; discovery at A names all three (keys at A). Each origin's mode
 * can be switched: `down` rejects like a refused connection, `silent` never answers (until the
 * client's own abort), `slowMs` answers late.
 */
function federation(answer: Record<string, unknown> = { cps: URLS[0], cpses: [...URLS] }) {
  const fakes: FakeCps[] = URLS.map(() => fakeCps({ signer: calleeCred }));
  const modes = new Map<string, Mode>(URLS.map((u) => [u, "up"]));
  const seen: string[] = [];
  const fetch: FetchLike = async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    seen.push(`${request.method} ${url.origin}${url.pathname}`);
    const i = URLS.indexOf(url.origin as (typeof URLS)[number]);
    const mode = modes.get(url.origin) ?? "down";
    if (i < 0 || mode === "down") throw new TypeError("fetch failed: connection refused");
    if (mode === "silent") {
      return new Promise((_, reject) =>
        request.signal.addEventListener("abort", () => reject(request.signal.reason)),
      );
    }
    if (typeof mode === "object") await new Promise((r) => setTimeout(r, mode.slowMs));
    if (url.pathname === "/.well-known/stir-oob") {
      return Response.json({ prefix: "2222", keys: `${URLS[0]}/keys`, ttl: 300, ...answer });
    }
    const fake = fakes[i] as FakeCps;
    return fake.fetch(`${fake.base}${url.pathname}${url.search}`, request);
  };
  const discovery = new Discovery({ bootstrap: URLS[0], fetch });
  const as = (extra: Partial<ConstructorParameters<typeof AuthenticationService>[0]> = {}) =>
    new AuthenticationService({
      credential: { privateKey: pki.valid.privateKey, x5u: X5U, chain: pki.valid.pem },
      trustAnchors: [pki.root.certificate],
      discovery,
      fetch,
      ...extra,
    });
  const vs = (keys: CalleeKey[], extra: Partial<ConstructorParameters<typeof VerificationService>[0]> = {}) =>
    new VerificationService({
      keys,
      trustAnchors: [pki.root.certificate],
      resolveCertificate: async (url) => {
        if (url !== X5U) throw new CpsError("X5U_FETCH_FAILED", "unknown x5u");
        return parseCertificateChain(pki.valid.pem);
      },
      discovery,
      fetch,
      ...extra,
    });
  const set = (url: string, mode: Mode) => modes.set(url, mode);
  return { fakes, fetch, discovery, as, vs, set, seen };
}

async function bobKey(fed: ReturnType<typeof federation>): Promise<CalleeKey> {
  const { keyPair, publicKey } = await generateRecipientKeyPair();
  // The key directory is A's (the discovery answer's `keys`).
  await fed.fakes[0]?.registerKey(BOB, "bob", publicKey);
  return { kid: "bob", privateKey: keyPair };
}

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: ALICE_TN }] });
  calleeCred = await pki.issue({ tnAuthList: [{ type: "one", tn: BOB_TN }], subject: "callee" });
});

describe("discovery names several CPSes (§10)", () => {
  it("an answer with cpses: every CPS, cps first", async () => {
    const fed = federation({ cps: URLS[1], cpses: [URLS[0], URLS[1], URLS[2]] });
    const loc = await fed.discovery.locate(BOB_TN);
    expect(loc.cps).toBe(URLS[1]);
    expect(loc.cpses).toEqual([URLS[1], URLS[0], URLS[2]]);
  });

  it("an answer with cps alone (a CPS that predates cpses) is one CPS", async () => {
    const fed = federation({ cps: URLS[2] });
    expect(await fed.discovery.locate(BOB_TN)).toMatchObject({ cps: URLS[2], cpses: [URLS[2]] });
  });

  it("a provisioned location may list several CPSes; keys default to the first's", async () => {
    const d = new Discovery({ provisioned: { cps: [URLS[2], URLS[0]] } });
    expect(await d.locate(BOB_TN)).toMatchObject({
      cps: URLS[2],
      cpses: [URLS[2], URLS[0]],
      keys: `${URLS[2]}/keys`,
    });
  });

  it.each([
    ["not a list", "https://x.test"],
    ["a member that is not https", ["http://x.test"]],
    ["more than 8", Array.from({ length: 9 }, (_, i) => `https://c${i}.test`)],
  ])("refuses cpses that is %s (CpsUnavailableError)", async (_name, cpses) => {
    const fed = federation({ cps: URLS[0], cpses });
    await expect(fed.discovery.locate(BOB_TN)).rejects.toBeInstanceOf(CpsUnavailableError);
    expect(() => checkServiceUrls(URLS[0], cpses, false)).toThrow(CpsUnavailableError);
  });
});

describe("AS: a fresh seal stored at each CPS, per the store policy", () => {
  it("stores at all three; no two CPSes hold the same bytes; per-CPS outcomes", async () => {
    const fed = federation();
    await bobKey(fed);
    const call = await fed.as().placeCall({ from: ALICE, to: BOB });
    expect(call.cps).toBe(URLS[0]);
    expect(call.copies.map((c) => [c.cps, c.outcome])).toEqual(URLS.map((u) => [u, "stored"]));
    expect(call.stored.map((s) => s.cps)).toEqual([...URLS]);
    const blobs = fed.fakes.map((f) => f.stored.get(BOB_TN)?.map((b) => b.blob) ?? []);
    expect(blobs.map((b) => b.length)).toEqual([1, 1, 1]);
    expect(new Set(blobs.flat()).size).toBe(3);
  });

  it('policy "all" (default): one CPS down fails the call with STORE_FAILED and says where', async () => {
    const fed = federation();
    await bobKey(fed);
    fed.set(URLS[2], "down");
    const err = await fed
      .as()
      .placeCall({ from: ALICE, to: BOB })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StirClientError);
    expect((err as StirClientError).code).toBe("STORE_FAILED");
    const copies = (err as StirClientError).details.copies as { cps: string; outcome: string }[];
    expect(copies.map((c) => c.outcome)).toEqual(["stored", "stored", "failed"]);
  });

  it('policy "any" and { count: 2 }: proceeds with one CPS down, which is reported failed', async () => {
    for (const storePolicy of ["any", { count: 2 }] as const) {
      const fed = federation();
      await bobKey(fed);
      fed.set(URLS[1], "down");
      const call = await fed.as({ storePolicy }).placeCall({ from: ALICE, to: BOB });
      expect(call.copies.map((c) => c.outcome)).toEqual(["stored", "failed", "stored"]);
      expect(call.copies[1]?.error?.code).toBe("UNAVAILABLE");
      expect(call.stored.map((s) => s.cps)).toEqual([URLS[0], URLS[2]]);
    }
  });

  it("a silent CPS holds the call no longer than the deadline once the policy is met", async () => {
    const fed = federation();
    await bobKey(fed);
    fed.set(URLS[2], "silent");
    const t = performance.now();
    const call = await fed
      .as({ storePolicy: { count: 2 }, cpsDeadlineMs: 300 })
      .placeCall({ from: ALICE, to: BOB });
    const took = performance.now() - t;
    expect(call.copies.map((c) => c.outcome)).toEqual(["stored", "stored", "timed-out"]);
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(2_000);
  });

  it("{ count: 2 } with two CPSes down gives up as soon as the policy cannot be met", async () => {
    const fed = federation();
    await bobKey(fed);
    fed.set(URLS[1], "down");
    fed.set(URLS[2], "down");
    const t = performance.now();
    const err = await fed
      .as({ storePolicy: { count: 2 }, cpsDeadlineMs: 5_000 })
      .placeCall({ from: ALICE, to: BOB })
      .catch((e: unknown) => e);
    expect(performance.now() - t).toBeLessThan(3_000);
    expect((err as StirClientError).code).toBe("STORE_FAILED");
    const copies = (err as StirClientError).details.copies as { outcome: string }[];
    expect(copies.map((c) => c.outcome)).toEqual(["stored", "failed", "failed"]);
  });

  it("a slow CPS the policy needs is waited for past the deadline", async () => {
    const fed = federation();
    await bobKey(fed);
    await fed.discovery.destination(BOB_TN);
    fed.set(URLS[1], "down");
    fed.set(URLS[2], { slowMs: 400 });
    const call = await fed
      .as({ storePolicy: { count: 2 }, cpsDeadlineMs: 100 })
      .placeCall({ from: ALICE, to: BOB });
    expect(call.copies.map((c) => c.outcome)).toEqual(["stored", "failed", "stored"]);
    expect(call.copies[2]?.ms).toBeGreaterThanOrEqual(390);
  });

  it("every CPS down: the first CPS's own error, as with one CPS", async () => {
    const fed = federation();
    await bobKey(fed);
    await fed.discovery.destination(BOB_TN); // discovery and keys cached while A is up
    for (const u of URLS) fed.set(u, "down");
    const err = await fed
      .as({ storePolicy: "any" })
      .placeCall({ from: ALICE, to: BOB })
      .catch((e: unknown) => e);
    // What sealAndStore throws for one CPS that cannot be reached: STORE_FAILED caused by UNAVAILABLE.
    expect((err as StirClientError).code).toBe("STORE_FAILED");
    expect((err as StirClientError).cause).toBeInstanceOf(CpsUnavailableError);
    expect((err as StirClientError).details).not.toHaveProperty("copies");
  });

  it("one CPS: one copies entry, and its failure is thrown as before", async () => {
    const fed = federation({ cps: URLS[0] });
    await bobKey(fed);
    const call = await fed.as().placeCall({ from: ALICE, to: BOB });
    expect(call.copies).toEqual([expect.objectContaining({ cps: URLS[0], outcome: "stored" })]);
    fed.fakes[0]?.failStores(1, 403, "TOKEN_MISSING");
    await expect(fed.as().placeCall({ from: ALICE, to: BOB })).rejects.toMatchObject({
      code: "STORE_FAILED",
    });
  });

  it("tokensPerCps pays each CPS from its own source", async () => {
    const fed = federation();
    await bobKey(fed);
    const asked: string[] = [];
    const tokens = tokensPerCps(
      (cps): StoreTokenSource => ({
        headersForStore: async (at) => {
          asked.push(`${cps}|${at}`);
          return { "CPS-Token": cps };
        },
      }),
    );
    await fed.as({ tokens }).placeCall({ from: ALICE, to: BOB });
    expect(asked.sort()).toEqual(URLS.map((u) => `${u}|${u}`));
    expect(fed.fakes.map((f) => f.storeHeaders[0]?.get("cps-token"))).toEqual([...URLS]);
  });
});

describe("VS: retrieves from each CPS, merges, and keeps to the deadline", () => {
  it("the same PASSporT from three CPSes is one candidate with three blobs; every source answered", async () => {
    const fed = federation();
    const key = await bobKey(fed);
    const call = await fed.as().placeCall({ from: ALICE, to: BOB });
    const v = await fed.vs([key]).verifyCall({ to: BOB, calling: ALICE });
    expect(v.verdict).toBe("verified");
    expect(v.candidates).toHaveLength(1);
    expect(v.candidates[0]?.passport).toBe(call.passport);
    expect(v.candidates[0]?.blobIds).toHaveLength(3);
    expect(v.opened).toBe(3);
    expect(v.sources?.map((s) => s.outcome)).toEqual(["answered", "answered", "answered"]);
  });

  it("a CPS down: verified from the others, the down one reported failed", async () => {
    const fed = federation();
    const key = await bobKey(fed);
    await fed.as().placeCall({ from: ALICE, to: BOB });
    fed.set(URLS[0], "down");
    const v = await fed.vs([key]).verifyCall({ to: BOB, calling: ALICE });
    expect(v.verdict).toBe("verified");
    expect(v.sources?.map((s) => [s.cps, s.outcome])).toEqual([
      [URLS[0], "failed"],
      [URLS[1], "answered"],
      [URLS[2], "answered"],
    ]);
    expect(v.sources?.[0]?.error?.code).toBe("UNAVAILABLE");
  });

  it("a silent CPS does not hold the verdict past the deadline", async () => {
    const fed = federation();
    const key = await bobKey(fed);
    await fed.as().placeCall({ from: ALICE, to: BOB });
    fed.set(URLS[1], "silent");
    const t = performance.now();
    const v = await fed.vs([key], { cpsDeadlineMs: 300 }).verifyCall({ to: BOB, calling: ALICE });
    const took = performance.now() - t;
    expect(v.verdict).toBe("verified");
    expect(v.sources?.map((s) => s.outcome)).toEqual(["answered", "timed-out", "answered"]);
    expect(took).toBeLessThan(2_000);
  });

  it("nothing answered by the deadline: the first answer is waited for and used", async () => {
    const fed = federation();
    const key = await bobKey(fed);
    await fed.as({ storePolicy: "any" }).placeCall({ from: ALICE, to: BOB });
    await fed.discovery.locate(BOB_TN);
    fed.set(URLS[0], "down");
    fed.set(URLS[1], { slowMs: 400 });
    fed.set(URLS[2], "silent");
    const v = await fed.vs([key], { cpsDeadlineMs: 100 }).verifyCall({ to: BOB, calling: ALICE });
    expect(v.verdict).toBe("verified");
    expect(v.sources?.map((s) => s.outcome)).toEqual(["failed", "answered", "timed-out"]);
    expect(v.sources?.[1]?.ms).toBeGreaterThanOrEqual(390);
  });

  it("no CPS answers: the first CPS's error, as with one CPS (no verdict is made up)", async () => {
    const fed = federation();
    const key = await bobKey(fed);
    await fed.discovery.locate(BOB_TN);
    for (const u of URLS) fed.set(u, "down");
    await expect(fed.vs([key]).verifyCall({ to: BOB, calling: ALICE })).rejects.toBeInstanceOf(
      CpsUnavailableError,
    );
  });

  it("one CPS: no sources in the verdict (as before)", async () => {
    const fed = federation({ cps: URLS[0] });
    const key = await bobKey(fed);
    await fed.as().placeCall({ from: ALICE, to: BOB });
    const v = await fed.vs([key]).verifyCall({ to: BOB, calling: ALICE });
    expect(v.verdict).toBe("verified");
    expect(v).not.toHaveProperty("sources");
    expect(fed.seen.filter((s) => s.startsWith("GET") && s.includes("/ppts"))).toEqual([
      `GET ${URLS[0]}/cps/${BOB_TN}/ppts`,
    ]);
  });
});

describe("policy and deadline helpers", () => {
  it("requiredStores", () => {
    expect(requiredStores("all", 3)).toBe(3);
    expect(requiredStores("any", 3)).toBe(1);
    expect(requiredStores({ count: 2 }, 3)).toBe(2);
    expect(requiredStores({ count: 5 }, 3)).toBe(3);
  });

  it.each([["some"], [{ count: 0 }], [{ count: 1.5 }], [null]])("checkStorePolicy refuses %j", (p) => {
    expect(() => checkStorePolicy(p)).toThrow(TypeError);
    expect(
      () =>
        new AuthenticationService({
          credential: { privateKey: pki.valid.privateKey, x5u: X5U, chain: pki.valid.pem },
          trustAnchors: [pki.root.certificate],
          discovery: new Discovery({ provisioned: { cps: URLS[0] } }),
          storePolicy: p as never,
        }),
    ).toThrow(TypeError);
  });

  it("settleUntil: all settled before the deadline returns at once; a pending one is undefined after it", async () => {
    const fast = await settleUntil([Promise.resolve(1), Promise.reject(new Error("x"))], 10_000, () => true);
    expect(fast.map((r) => r?.status)).toEqual(["fulfilled", "rejected"]);
    const t = performance.now();
    const late = await settleUntil(
      [Promise.resolve(1), new Promise(() => {})],
      50,
      (rs) => rs[0] !== undefined,
    );
    expect(late).toEqual([{ status: "fulfilled", value: 1 }, undefined]);
    expect(performance.now() - t).toBeLessThan(1_000);
  });
});
