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
import { clock, ms, type StoredCopy, sealAndStore } from "./placement.js";
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

/** Milliseconds per step of §8.1. */
export interface AsTimings {
  /** Steps 1-2: credential covers `orig`. */
  authorize: number;
  /** Step 3: CPS discovery and key lookup (near zero when cached). */
  discover: number;
  /** Step 4: creating and signing the PASSporT. */
  sign: number;
  /** Step 4: one HPKE-sealed copy per key. */
  seal: number;
  /** One storage token per store. */
  tokens: number;
  /** Storing every copy at the CPS. */
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
  readonly cps: string;
  readonly stored: readonly StoredCopy[];
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

  constructor(options: AuthenticationServiceOptions) {
    if (!options.validator && !options.trustAnchors?.length) {
      throw new TypeError("An authentication service needs trust anchors or a validator for key records");
    }
    this.#options = options;
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
   * copy is stored. Throws `StirClientError` (NOT_AUTHORITATIVE, NO_KEYS, NO_VALID_KEYS with
   * `details.skipped`, STORE_FAILED, NO_TOKEN),
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
    const { cps, keys, skipped } = await this.#options.discovery.destination(to, this.#check, at);
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

    const { stored, timings } = await sealAndStore({
      cps,
      tn: to,
      passports: [passport],
      keys,
      tokens: this.#options.tokens ?? untokenedStores,
      ...(this.#options.fetch ? { fetch: this.#options.fetch } : {}),
      ...(this.#relay ? { relay: this.#relay } : {}),
      ...(this.#options.requireRelay ? { requireRelay: true } : {}),
    });
    return {
      proceed: true,
      from,
      to,
      passport,
      cps,
      stored,
      skipped,
      timings: { authorize, discover, sign, ...timings, total: ms(start) },
    };
  }
}
