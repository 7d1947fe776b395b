/**
 * The demo's calls, run with the project's own client library (src/client/, bundled for the
 * browser): Bob's phone makes its key pair and registers a signed key record (RFC 8816 §11); an AS
 * signs, seals and stores (§8.1); Bob's VS retrieves, opens and verifies (§8.2). Each scenario reports
 * its steps through `onStep` as they finish, with their measured times, and every HTTP exchange
 * through the recorder, so the page can show what each party sent and what the CPS holds.
 * No DOM here.
 */
import {
  AuthenticationService,
  type CallVerification,
  type CertificateChain,
  canonicalTn,
  Discovery,
  type FetchLike,
  generateRecipientKeyPair,
  KeyDirectoryClient,
  type OpenedBlobs,
  type PlacedCall,
  parseCertificateChain,
  sealAndStore,
  untokenedStores,
  VerificationService,
} from "../../src/client/index.js";
import { decodeBase64url } from "../../src/stir/base64url.js";
import { createPassport } from "../../src/stir/passport.js";

export type Lane = "alice" | "cps" | "bob";
export type ScenarioName = "genuine" | "spoofed" | "stale" | "other-number" | "none";

/** One arrow (or one lane's own work) of the sequence diagram. */
export interface Step {
  readonly id: string;
  readonly phase: "setup" | "as" | "signal" | "vs";
  readonly from: Lane;
  readonly to: Lane;
  readonly title: string;
  readonly detail: string;
  /** Measured milliseconds; undefined for a step with nothing to time (the PSTN call). */
  readonly ms?: number;
  readonly status: "ok" | "fail";
}

/** One HTTP request a party made, with its answer. */
export interface Exchange {
  readonly party: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly requestType?: string;
  readonly requestBody?: string;
  readonly responseBody?: string;
}

interface DemoParty {
  subject: string;
  numbers: string[];
  chainPem: string;
  privateKeyPkcs8: string;
  x5u: string;
}

/** What GET /demo/credentials serves (src/routes/demo.ts). */
export interface DemoCredentials {
  testOnly: true;
  cps: string;
  rootPem: string;
  parties: { alice: DemoParty; bob: DemoParty; mallory: DemoParty };
}

interface Party {
  readonly subject: string;
  readonly privateKey: CryptoKey;
  readonly x5u: string;
  readonly chainPem: string;
  readonly chain: CertificateChain;
  readonly der: Uint8Array[];
}

export interface Demo {
  readonly cps: string;
  readonly alice: Party;
  readonly bob: Party;
  readonly mallory: Party;
  readonly anchors: CertificateChain;
  readonly aliceTn: string;
  readonly malloryTn: string;
  readonly bobBlock: { start: number; count: number };
  /** A number nobody in the demo holds: the "other number" a replayed PASSporT was made for. */
  readonly carolTn: string;
}

export interface ScenarioResult {
  readonly scenario: ScenarioName;
  readonly bobTn: string;
  readonly callingTn: string;
  readonly placed?: PlacedCall;
  /** The PASSporT the caller's side signed (before sealing), if any. */
  readonly passport?: string;
  readonly opened: OpenedBlobs;
  readonly verification: CallVerification;
  readonly exchanges: readonly Exchange[];
  readonly bobKid: string;
}

const ES256 = { name: "ECDSA", namedCurve: "P-256" } as const;

async function party(p: DemoParty): Promise<Party> {
  const chain = await parseCertificateChain(p.chainPem);
  return {
    subject: p.subject,
    // Not extractable: the page signs with it and cannot export it again.
    privateKey: await crypto.subtle.importKey(
      "pkcs8",
      new Uint8Array(decodeBase64url(p.privateKeyPkcs8)),
      ES256,
      false,
      ["sign"],
    ),
    x5u: p.x5u,
    chainPem: p.chainPem,
    chain,
    der: chain.certificates.map((c) => new Uint8Array(c.rawData)),
  };
}

/** The demo's parties from GET /demo/credentials; null when this CPS does not serve them (production). */
export async function loadDemo(): Promise<Demo | null> {
  const res = await fetch("/demo/credentials", { headers: { Accept: "application/json" } });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`GET /demo/credentials answered ${res.status}`);
  const body = (await res.json()) as DemoCredentials;
  const rangeOf = /^\+(\d+) \+ (\d+)$/.exec(body.parties.bob.numbers[0] ?? "");
  if (!rangeOf) throw new Error("The demo credentials name no block for Bob");
  return {
    cps: body.cps,
    alice: await party(body.parties.alice),
    bob: await party(body.parties.bob),
    mallory: await party(body.parties.mallory),
    anchors: await parseCertificateChain(body.rootPem),
    aliceTn: canonicalTn(body.parties.alice.numbers[0] ?? ""),
    malloryTn: canonicalTn(body.parties.mallory.numbers[0] ?? ""),
    bobBlock: { start: Number(rangeOf[1]), count: Number(rangeOf[2]) },
    carolTn: "44445554444",
  };
}

let nextOffset = -1;

/**
 * A number of Bob's block not used yet by this page: stored PASSporTs live 60 s (RFC 8816 §7.5), so
 * a call to the same number a moment ago would still be there and mix into this call's verdict.
 */
function freshBobNumber(demo: Demo): string {
  if (nextOffset < 0) nextOffset = Math.floor(Math.random() * demo.bobBlock.count);
  const n = demo.bobBlock.start + (nextOffset++ % demo.bobBlock.count);
  return String(n);
}

function recorder(exchanges: Exchange[], partyName: string): FetchLike {
  return async (input, init) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    const headers = new Headers(init?.headers);
    const res = await fetch(input, init);
    const type = res.headers.get("content-type") ?? "";
    const text = /json|passport|pem|text/.test(type) ? await res.clone().text() : undefined;
    exchanges.push({
      party: partyName,
      method,
      path: url.pathname + url.search,
      status: res.status,
      ...(headers.get("content-type") ? { requestType: headers.get("content-type") ?? "" } : {}),
      ...(typeof init?.body === "string" ? { requestBody: init.body } : {}),
      ...(text === undefined ? {} : { responseBody: text }),
    });
    return res;
  };
}

const now = () => performance.now();
const since = (t: number) => performance.now() - t;

/** How a scenario's caller side behaves. */
const SCENARIOS: Record<ScenarioName, { caller: "alice" | "mallory" | "none"; callerTitle: string }> = {
  genuine: { caller: "alice", callerTitle: "Alice's AS" },
  spoofed: { caller: "mallory", callerTitle: "Mallory's AS, claiming Alice's number" },
  stale: { caller: "alice", callerTitle: "Alice's AS, with a PASSporT 5 minutes old" },
  "other-number": { caller: "alice", callerTitle: "a replayer, with Alice's PASSporT for another number" },
  none: { caller: "none", callerTitle: "a caller who stores nothing" },
};

/**
 * Runs one scenario end to end against the CPS. `onStep` is called as each step finishes (the page
 * animates it). Throws only on an unexpected failure (the CPS down, a misconfiguration): a refused
 * call is a verdict, not an error.
 */
export async function runScenario(
  demo: Demo,
  scenario: ScenarioName,
  onStep: (step: Step) => Promise<void> | void,
): Promise<ScenarioResult> {
  const exchanges: Exchange[] = [];
  const bobTn = freshBobNumber(demo);
  const calling = demo.aliceTn; // every scenario presents Alice's number in signalling
  const loopback = { allowLoopback: true } as const;
  const anchors = demo.anchors.certificates;

  // Setup, Bob's phone (§11): the key pair is made here; only the public half is sent.
  let t = now();
  const pair = await generateRecipientKeyPair();
  await onStep({
    id: "bob-keygen",
    phase: "setup",
    from: "bob",
    to: "bob",
    title: "Bob's phone makes an X25519 key pair",
    detail: "WebCrypto, in this page; the private key never leaves it",
    ms: since(t),
    status: "ok",
  });
  t = now();
  const directory = new KeyDirectoryClient({
    directory: `${demo.cps}/keys`,
    credential: { privateKey: demo.bob.privateKey, x5c: demo.bob.der },
    fetch: recorder(exchanges, "bob"),
  });
  // The window starts a while back so that the "stale" caller, whose clock is 5 minutes behind,
  // still finds the key valid and gets as far as signing: the VS is what must catch it.
  const registered = await directory.register({
    publicKey: pair.publicKey,
    tn: bobTn,
    label: "bob-phone",
    nbf: Math.floor(Date.now() / 1000) - 900,
    lifetimeSeconds: 3600 + 900,
  });
  await onStep({
    id: "bob-register",
    phase: "setup",
    from: "bob",
    to: "cps",
    title: "Signs a key record with his STIR credential and registers it",
    detail: `PUT /keys/${bobTn}: a JWS (ES256, x5c) binding the public key to his number, plus a one-use credential token`,
    ms: since(t),
    status: "ok",
  });

  // §8.1, the caller's side.
  const { caller } = SCENARIOS[scenario];
  const discovery = new Discovery({
    provisioned: { cps: demo.cps },
    allowLoopbackHttp: true,
    fetch: recorder(exchanges, caller),
  });
  let placed: PlacedCall | undefined;
  let passport: string | undefined;
  if (scenario === "genuine" || scenario === "stale" || scenario === "spoofed") {
    const signer = scenario === "spoofed" ? demo.mallory : demo.alice;
    const as = new AuthenticationService({
      credential: { privateKey: signer.privateKey, x5u: signer.x5u, chain: signer.chain },
      discovery,
      tokens: untokenedStores,
      trustAnchors: anchors,
      x5uPolicy: loopback,
      fetch: recorder(exchanges, caller),
      // A rogue AS skips step 2 (may the originator claim this number?); an honest one refuses.
      ...(scenario === "spoofed" ? { mayClaim: () => true } : {}),
      ...(scenario === "stale" ? { now: () => Date.now() / 1000 - 300 } : {}),
    });
    placed = await as.placeCall({ from: calling, to: bobTn });
    passport = placed.passport;
    const tm = placed.timings;
    const who = scenario === "spoofed" ? "Mallory" : "Alice";
    await onStep({
      id: "as-authorize",
      phase: "as",
      from: "alice",
      to: "alice",
      title: "Steps 1-2: may this credential sign for the calling number?",
      detail:
        scenario === "spoofed"
          ? `Mallory's credential covers only ${demo.malloryTn}; her rogue AS signs for ${calling} anyway`
          : `${who}'s certificate (TNAuthList) covers ${calling}`,
      ms: tm.authorize,
      status: "ok",
    });
    await onStep({
      id: "as-discover",
      phase: "as",
      from: "alice",
      to: "cps",
      title: "Step 3: finds Bob's keys and checks their signed records",
      detail: `GET /keys?prefix=… (the directory learns a block of 100 numbers, not Bob's); ${placed.stored.length} key(s) verified, ${placed.skipped.length} skipped`,
      ms: tm.discover,
      status: "ok",
    });
    await onStep({
      id: "as-sign",
      phase: "as",
      from: "alice",
      to: "alice",
      title: "Step 4: signs the PASSporT",
      detail:
        scenario === "stale"
          ? "ES256, full form; iat 5 minutes in the past"
          : "ES256, full form (orig, dest, iat, attest, origid)",
      ms: tm.sign,
      status: "ok",
    });
    await onStep({
      id: "as-seal",
      phase: "as",
      from: "alice",
      to: "alice",
      title: "Step 4: seals one copy per key",
      detail: "HPKE (X25519, AES-128-GCM) to Bob's key, bound to his number, padded: 1,072 bytes",
      ms: tm.seal,
      status: "ok",
    });
    await onStep({
      id: "as-store",
      phase: "as",
      from: "alice",
      to: "cps",
      title: "Stores the sealed copy, then lets the call proceed",
      detail: `POST /cps/${bobTn}/ppts → 201 (no storage token needed on this local CPS; in production a blind-signed token pays, §7.5)`,
      ms: tm.store + tm.tokens,
      status: "ok",
    });
  } else if (scenario === "other-number") {
    // A genuine PASSporT Alice signed for a call to Carol, which a party who saw it (in band, or as
    // Carol) seals to Bob and stores under his number (RFC 8816 §7.4): the envelope opens, the claims don't fit.
    t = now();
    passport = await createPassport(
      {
        x5u: demo.alice.x5u,
        ppt: "shaken",
        claims: {
          attest: "A",
          dest: { tn: [demo.carolTn] },
          iat: Math.floor(Date.now() / 1000),
          orig: { tn: calling },
          origid: crypto.randomUUID(),
        },
      },
      demo.alice.privateKey,
    );
    await onStep({
      id: "as-sign",
      phase: "as",
      from: "alice",
      to: "alice",
      title: "Alice signs a PASSporT for a call to Carol",
      detail: `Genuine: orig ${calling}, dest ${demo.carolTn}`,
      ms: since(t),
      status: "ok",
    });
    t = now();
    const keys = [{ kid: registered.kid, publicKey: pair.publicKey }];
    const { timings } = await sealAndStore({
      cps: demo.cps,
      tn: canonicalTn(bobTn),
      passports: [passport],
      keys,
      tokens: untokenedStores,
      fetch: recorder(exchanges, "alice"),
    });
    await onStep({
      id: "as-store",
      phase: "as",
      from: "alice",
      to: "cps",
      title: "A replayer seals it to Bob's key and stores it under Bob's number",
      detail: `POST /cps/${bobTn}/ppts → 201: the CPS cannot see what is inside`,
      ms: timings.seal + timings.store,
      status: "ok",
    });
  } else {
    await onStep({
      id: "as-none",
      phase: "as",
      from: "alice",
      to: "alice",
      title: "The caller stores no PASSporT",
      detail: `An unsigned call presenting ${calling}, as a spoofer without any credential would place it`,
      status: "ok",
    });
  }

  await onStep({
    id: "signal",
    phase: "signal",
    from: "alice",
    to: "bob",
    title: `The call reaches Bob over the PSTN, calling number ${calling}`,
    detail: "The SIP Identity header did not survive the trip: that is why the PASSporT travels out of band",
    status: "ok",
  });

  // §8.2, Bob's VS.
  const vs = new VerificationService({
    keys: [{ kid: registered.kid, privateKey: pair.keyPair }],
    trustAnchors: anchors,
    x5uPolicy: loopback,
    cps: demo.cps,
    fetch: recorder(exchanges, "bob"),
  });
  const opened = await vs.open(bobTn);
  await onStep({
    id: "vs-retrieve",
    phase: "vs",
    from: "bob",
    to: "cps",
    title: "Step 1: retrieves everything stored for his number",
    detail: `GET /cps/${bobTn}/ppts → ${opened.examined} entries, real ones among dummies`,
    ms: opened.timings.retrieve,
    status: "ok",
  });
  await onStep({
    id: "vs-open",
    phase: "vs",
    from: "bob",
    to: "bob",
    title: "Step 1: tries each entry with his private key",
    detail: `${opened.opened} opened; the other ${opened.examined - opened.opened} are dummies or not his`,
    ms: opened.timings.open,
    status: opened.opened > 0 ? "ok" : "fail",
  });
  const verification = await vs.judge(opened, calling);
  const failure = verification.candidates.find((c) => !c.ok)?.failure;
  if (opened.opened > 0) {
    await onStep({
      id: "vs-verify",
      phase: "vs",
      from: "bob",
      to: "bob",
      title: "Steps 2-6: ppt, orig and dest, certificate (x5u), iat freshness, signature",
      detail:
        verification.verdict === "verified"
          ? `Signed by ${verification.verified?.signer ?? "a trusted credential"} for ${calling}`
          : `Step ${failure?.step}: ${failure?.code}: ${failure?.message}`,
      ms: verification.timings.verify,
      status: verification.verdict === "verified" ? "ok" : "fail",
    });
  }
  return {
    scenario,
    bobTn,
    callingTn: calling,
    ...(placed ? { placed } : {}),
    ...(passport ? { passport } : {}),
    opened,
    verification,
    exchanges,
    bobKid: registered.kid,
  };
}

/** A JWS's header and payload as JSON objects (for display; nothing is trusted from this). */
export function jwsParts(jws: string): { header: unknown; payload: unknown } {
  const [h = "", p = ""] = jws.split(".");
  const text = (s: string) => new TextDecoder().decode(decodeBase64url(s));
  return { header: JSON.parse(text(h)), payload: JSON.parse(text(p)) };
}
