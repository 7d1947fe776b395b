/**
 * Out-of-band authentication service (RFC 8816 §8.1), steps as the RFC words them:
 *   1. it holds a credential (STIR certificate + key) that can sign for `orig`;
 *   2. the originator may claim `orig` (policy; by default the same check as step 1);
 *   3. it discovers the CPS and ALL encryption keys of the destination (cached per their TTLs), by
 *      prefix so the directory does not learn the number (§11), and keeps only the keys whose signed
 *      key record verifies: signature, chain to its trust anchors, TNAuthList (or SPC map) covering
 *      every block, a block containing the called number, window at call time (§11 "linked to the
 *      STIR credential"). The directory's own JWK members are never trusted; skipped keys are
 *      reported with a reason, and with none left it refuses (`NO_VALID_KEYS`);
 *   4. it builds the full-form PASSporT (iat = now) and seals one copy per key;
 * then it spends one storage token per store, stores every copy, and only then reports that the
 * call may proceed. Each step is timed.
 * When discovery names several CPSes for the number (§10), the copies are sealed afresh for each CPS
 * (no two CPSes hold the same bytes, so they cannot match their stores by content) and stored at all
 * of them concurrently; the call proceeds when the `storePolicy` is met ("all" by default), and a CPS
 * still storing `cpsDeadlineMs` after the stores began is reported as timed out instead of holding
 * the call (src/client/multi-cps.ts).
 */
import { CpsError } from "../errors.js";
import { type CertificateChain, certificateTnAuthList, parseCertificateChain } from "../stir/cert-parse.js";
import { type Attestation, createPassport, type PassportClaims } from "../stir/passport.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import { coversTn, type TnAuthList } from "../stir/tnauthlist.js";
import type { FetchLike } from "./cps-client.js";
import type { Discovery } from "./discovery.js";
import { StirClientError } from "./errors.js";
import {
  KeyRecordCheck,
  type KeyRecordCheckOptions,
  requireUsableKeys,
  type SkippedKey,
} from "./key-records.js";
import {
  type CpsFault,
  checkDeadline,
  checkStorePolicy,
  faultOf,
  requiredStores,
  type StorePolicy,
  settleUntil,
} from "./multi-cps.js";
import { clock, ms, type PlacementTimings, type StoredCopy, sealAndStore } from "./placement.js";
import { type OhttpRelay, type RelayTransportOptions, relayFor } from "./relay.js";
import { type StoreTokenSource, untokenedStores } from "./store-tokens.js";

/** The AS's signing credential: a STIR certificate chain and its ES256 private key. */
export interface SigningCredential {
  /** ECDSA P-256 private key of the leaf certificate. */
  readonly privateKey: CryptoKey;
  /** Where verifiers fetch the chain (the PASSporT's `x5u`, RFC 8225 §4.3). */
  readonly x5u: string;
  /** The chain itself (PEM, leaf first, or parsed), to know which numbers the AS may sign for. */
  readonly chain: string | CertificateChain;
}

export interface AuthenticationServiceOptions
  extends RelayTransportOptions,
    Omit<KeyRecordCheckOptions, "fetch"> {
  readonly credential: SigningCredential;
  /**
   * Where the destination's CPS and keys are. Its `lookupOpenDigits` sets how much of the called
   * number key lookups reveal (default 2 open digits).
   */
  readonly discovery: Discovery;
  /** Storage tokens; default `untokenedStores` (only for a CPS with ALLOW_UNTOKENED_STORES). */
  readonly tokens?: StoreTokenSource;
  readonly fetch?: FetchLike;
  /**
   * Step 2 policy: may this originator claim `orig`? Default: the certificate's TNAuthList covers it
   * (the RFC's example for an AS built into the calling device). Give a function for an SPC
   * certificate that speaks for a carrier's numbers, or for enterprise policy.
   */
  readonly mayClaim?: (orig: CanonicalTn, tnAuthList: TnAuthList) => boolean | Promise<boolean>;
  /** Seconds since the epoch (default: clock), for `iat`. */
  readonly now?: () => number;
  /**
   * With several CPSes for the number (§10): how many must hold the call before it proceeds, `"all"`
   * (default), `"any"` or `{ count }`. A store is attempted at each; each store at a CPS is paid with a
   * token of that CPS (`tokens.headersForStore(cps, ...)`; `tokensPerCps` builds such a source).
   */
  readonly storePolicy?: StorePolicy;
  /**
   * With several CPSes: milliseconds from the start of the stores after which a CPS still storing no
   * longer holds the call once the policy is met (it is reported `timed-out`; default 2,000). With a
   * single CPS the call waits for it as always (the CPS client's own timeout and retries).
   */
  readonly cpsDeadlineMs?: number;
  /**
   * Cover traffic (RFC 8816 §7.4, §13; a `CoverTraffic`, src/client/cover.ts): told of every placed
   * call (number, CPSes, copies per CPS) so its cover calls look like this AS's real ones.
   */
  readonly cover?: { observe(call: { to: CanonicalTn; cpses: readonly string[]; copies: number }): void };
}

export interface PlaceCallInput {
  /** Calling number, any accepted spelling (`+1 111 555 1111`). */
  readonly from: string;
  /** Called number. */
  readonly to: string;
  /** SHAKEN attestation (RFC 8588), default `A`. */
  readonly attest?: Attestation;
  /** SHAKEN origid, default a random UUID. */
  readonly origid?: string;
}

/** A stored copy and the CPS that holds it. */
export interface PlacedCopy extends StoredCopy {
  readonly cps: string;
}

/** What became of the stores at one CPS of the number. */
export interface CpsStoreResult {
  readonly cps: string;
  /** `stored`: every copy; `failed`: a store was refused or unreachable; `timed-out`: still running at the deadline. */
  readonly outcome: "stored" | "failed" | "timed-out";
  /** Copies this CPS holds (for `failed`, those stored before a store failed). */
  readonly stored: readonly PlacedCopy[];
  readonly error?: CpsFault;
  /** Milliseconds from the start of the stores until this CPS's last answer (absent when timed out). */
  readonly ms?: number;
}

/** Milliseconds per step of §8.1. */
export interface AsTimings {
  /** Steps 1-2: credential covers `orig`. */
  authorize: number;
  /** Step 3: CPS discovery and key lookup (near zero when cached). */
  discover: number;
  /** Step 4: creating and signing the PASSporT. */
  sign: number;
  /** Step 4: one HPKE-sealed copy per key (per CPS: summed over the CPSes). */
  seal: number;
  /** One storage token per store (summed over the CPSes). */
  tokens: number;
  /** Storing every copy at the CPS (several CPSes: wall time of all the stores, up to the verdict on the policy). */
  store: number;
  total: number;
}

export interface PlacedCall {
  /** Always true when this resolves: every copy is stored, the call may be initiated. */
  readonly proceed: true;
  readonly from: CanonicalTn;
  readonly to: CanonicalTn;
  /** The full-form PASSporT (for an Identity header in band too, RFC 8816 §8.1). */
  readonly passport: string;
  /** The number's (first) CPS. */
  readonly cps: string;
  /** Every copy stored, at every CPS. */
  readonly stored: readonly PlacedCopy[];
  /** Per CPS of the number (§10), in discovery order: stored, failed or timed out. One entry for one CPS. */
  readonly copies: readonly CpsStoreResult[];
  /** Keys the directory served for the number that were NOT sealed to, with the reason for each. */
  readonly skipped: readonly SkippedKey[];
  readonly timings: AsTimings;
}

/**
 * An out-of-band authentication service for one signing credential.
 *
 * @example
 * const as = new AuthenticationService({ credential: { privateKey, x5u, chain: pem },
 *   discovery: new Discovery({ bootstrap: "https://cps.example.com" }), tokens: wallet,
 *   trustAnchors: [stiPaRoot] });
 * const call = await as.placeCall({ from: "+1 111 555 1111", to: "+2 222 555 2222" });
 * // call.proceed === true: now signal the call; call.timings has per-step milliseconds
 */
export class AuthenticationService {
  readonly #options: AuthenticationServiceOptions;
  #chain: Promise<CertificateChain> | undefined;
  /** Stores go through this relay when set (docs/ohttp.md); one key cache for every call. */
  readonly #relay: OhttpRelay | undefined;
  /** Which served keys may be sealed to (signed records, docs/key-directory.md). */
  readonly #check: KeyRecordCheck;
  readonly #policy: StorePolicy;
  readonly #deadline: number;

  constructor(options: AuthenticationServiceOptions) {
    if (!options.validator && !options.trustAnchors?.length) {
      throw new TypeError("An authentication service needs trust anchors or a validator for key records");
    }
    this.#options = options;
    this.#policy = checkStorePolicy(options.storePolicy === undefined ? "all" : options.storePolicy);
    this.#deadline = checkDeadline(options.cpsDeadlineMs);
    this.#relay = relayFor(options.relay, options.fetch);
    // Unless a validator is given, the check's own checks CRLs with this AS's fetch under the x5u
    // policy (docs/passport-and-credentials.md "Revocation").
    this.#check = new KeyRecordCheck(options);
  }

  async #tnAuthList(): Promise<{ list: TnAuthList; chain: CertificateChain }> {
    const c = this.#options.credential.chain;
    this.#chain ??= typeof c === "string" ? parseCertificateChain(c) : Promise.resolve(c);
    const chain = await this.#chain;
    const leaf = chain.certificates[0];
    if (leaf === undefined) throw new CpsError("CERT_MALFORMED", "The credential has no certificate");
    return { list: certificateTnAuthList(leaf) ?? [], chain };
  }

  /**
   * Steps 1-2 only: throws `StirClientError("NOT_AUTHORITATIVE")` unless this AS can sign for `from`.
   * @example
   * await as.authorize(canonicalTn("+1 111 555 1111"));
   */
  async authorize(from: CanonicalTn): Promise<void> {
    const { list, chain } = await this.#tnAuthList();
    const now = new Date((this.#options.now?.() ?? Date.now() / 1000) * 1000);
    const leaf = chain.certificates[0];
    if (leaf && (now < leaf.notBefore || now > leaf.notAfter)) {
      throw new StirClientError("NOT_AUTHORITATIVE", "The signing certificate is not valid now");
    }
    // Step 1: the credential can sign for orig. Step 2: the originator can claim it (policy).
    const covered = this.#options.mayClaim ? await this.#options.mayClaim(from, list) : coversTn(list, from);
    if (!covered) {
      throw new StirClientError(
        "NOT_AUTHORITATIVE",
        "The signing credential does not cover the calling number",
      );
    }
  }

  /**
   * Places a call (§8.1): authorize, discover, sign, seal per key, pay, store; resolves only when every
   * copy is stored (several CPSes: at as many CPSes as `storePolicy` asks, `copies` says where).
   * Throws `StirClientError` (NOT_AUTHORITATIVE, NO_KEYS, NO_VALID_KEYS with `details.skipped`,
   * STORE_FAILED with `details.stored` and, for several CPSes, `details.copies`, NO_TOKEN),
   * `CpsError` (an answer of the CPS or directory) or `CpsUnavailableError`.
   * @example
   * const { stored, timings } = await as.placeCall({ from: "+1 111 555 1111", to: "+2 222 555 2222" });
   */
  async placeCall(input: PlaceCallInput): Promise<PlacedCall> {
    const start = clock();
    const from = canonicalTn(input.from);
    const to = canonicalTn(input.to);

    let t = clock();
    await this.authorize(from);
    const authorize = ms(t);

    t = clock();
    const at = this.#options.now?.() ?? Date.now() / 1000;
    const { cps, cpses, keys, skipped } = await this.#options.discovery.destination(to, this.#check, at);
    requireUsableKeys(keys, skipped);
    const discover = ms(t);

    t = clock();
    const claims: PassportClaims = {
      attest: input.attest ?? "A",
      dest: { tn: [to] },
      iat: Math.floor(at),
      orig: { tn: from },
      origid: input.origid ?? crypto.randomUUID(),
    };
    // §8.1: the copy stored at the CPS MUST be full form; createPassport makes the full form.
    const passport = await createPassport(
      { x5u: this.#options.credential.x5u, ppt: "shaken", claims },
      this.#options.credential.privateKey,
    );
    const sign = ms(t);

    // One sealAndStore per CPS: each seals afresh (HPKE's ephemeral key), so no two CPSes hold the same bytes.
    const storeAt = (at: string) =>
      sealAndStore({
        cps: at,
        tn: to,
        passports: [passport],
        keys,
        tokens: this.#options.tokens ?? untokenedStores,
        ...(this.#options.fetch ? { fetch: this.#options.fetch } : {}),
        ...(this.#relay ? { relay: this.#relay } : {}),
        ...(this.#options.requireRelay ? { requireRelay: true } : {}),
      });
    const { stored, copies, timings } =
      cpses.length <= 1 ? await this.#storeAtOne(cps, storeAt) : await this.#storeAtEach(cpses, storeAt);
    this.#options.cover?.observe({ to, cpses: cpses.length ? cpses : [cps], copies: keys.length });
    return {
      proceed: true,
      from,
      to,
      passport,
      cps,
      stored,
      copies,
      skipped,
      timings: { authorize, discover, sign, ...timings, total: ms(start) },
    };
  }

  /** One CPS: as always, any failure is the call's (thrown as is). */
  async #storeAtOne(cps: string, storeAt: (cps: string) => ReturnType<typeof sealAndStore>) {
    const t = clock();
    const { stored, timings } = await storeAt(cps);
    const placed = stored.map((s) => ({ ...s, cps }));
    const copies: CpsStoreResult[] = [{ cps, outcome: "stored", stored: placed, ms: ms(t) }];
    return { stored: placed, copies, timings };
  }

  /**
   * Several CPSes (§10): stores at each concurrently; proceeds once `storePolicy` is met and every CPS
   * has answered or the deadline has passed. Throws STORE_FAILED (`details.copies`) when the policy is
   * not met, or the first CPS's own error when every CPS refused (as a single CPS would).
   */
  async #storeAtEach(
    cpses: readonly string[],
    storeAt: (cps: string) => ReturnType<typeof sealAndStore>,
  ): Promise<{ stored: PlacedCopy[]; copies: CpsStoreResult[]; timings: PlacementTimings }> {
    const need = requiredStores(this.#policy, cpses.length);
    const started = clock();
    const tasks = cpses.map((cps) => storeAt(cps).then((r) => ({ ...r, ms: ms(started) })));
    const count = (rs: readonly (PromiseSettledResult<unknown> | undefined)[], s: string) =>
      rs.filter((r) => r?.status === s).length;
    const results = await settleUntil(
      tasks,
      this.#deadline,
      (rs) => count(rs, "fulfilled") >= need,
      started,
      // Too many refused to ever meet the policy: no point waiting for the rest.
      (rs) => count(rs, "rejected") > cpses.length - need,
    );
    const timings: PlacementTimings = { seal: 0, tokens: 0, store: ms(started) };
    const copies: CpsStoreResult[] = results.map((r, i) => {
      const cps = cpses[i] as string;
      if (r === undefined) return { cps, outcome: "timed-out", stored: [] };
      if (r.status === "fulfilled") {
        timings.seal += r.value.timings.seal;
        timings.tokens += r.value.timings.tokens;
        const stored = r.value.stored.map((s) => ({ ...s, cps }));
        return { cps, outcome: "stored", stored, ms: r.value.ms };
      }
      const partial = (r.reason as StirClientError | undefined)?.details?.stored;
      const stored = Array.isArray(partial) ? (partial as StoredCopy[]).map((s) => ({ ...s, cps })) : [];
      // sealAndStore wraps a refused store in STORE_FAILED: the CPS's own answer says more.
      const reason = r.reason as StirClientError | undefined;
      const fault = faultOf(reason?.code === "STORE_FAILED" && reason.cause ? reason.cause : reason);
      return { cps, outcome: "failed", stored, error: fault, ms: ms(started) };
    });
    timings.seal = Math.round(timings.seal * 100) / 100;
    timings.tokens = Math.round(timings.tokens * 100) / 100;
    const stored = copies.flatMap((c) => c.stored);
    const holding = copies.filter((c) => c.outcome === "stored").length;
    if (holding >= need) return { stored, copies, timings };
    const first = results.find((r) => r?.status === "rejected");
    if (holding === 0 && results.every((r) => r?.status === "rejected") && first?.status === "rejected") {
      throw first.reason;
    }
    throw new StirClientError(
      "STORE_FAILED",
      `${holding} of ${cpses.length} CPSes hold the call, the store policy needs ${need}; do not rely on out-of-band for this call`,
      { ...(first?.status === "rejected" ? { cause: first.reason } : {}), details: { stored, copies } },
    );
  }
}
