/**
 * A diverting service (RFC 8946; RFC 8816 §6.2, last paragraph): the service of a number C that
 * forwards a call it received out of band to another number B. The caller's AS sealed the original
 * PASSporT to C's keys, which B does not hold, so C's service:
 *   1. holds a credential covering C (RFC 8946 §3: the `div` it signs must be within its scope);
 *   2. signs a diversion PASSporT: orig copied, dest B, `div` C, iat now; as `div-o` with the PASSporT
 *      it diverts nested in `opt` (RFC 8946 §5; what RFC 8816 §6.2 says a retargeting storer SHOULD
 *      use), or as a plain `div`;
 *   3. finds B's CPS and keys exactly as an AS does (signed key records, RFC 8816 §11);
 *   4. seals to B's keys and stores under B's number: the new PASSporT, plus every earlier PASSporT of
 *      the chain not already nested in it (for `div`: the one it diverts, and so on back to the
 *      original, stored without a feedback tag: their dest is not B), paying one storage token per
 *      store.
 * B's VS then verifies the chain (vs.ts, src/stir/diversion.ts). docs/diversion.md has the details.
 */
import { CpsError } from "../errors.js";
import { type CertificateChain, certificateTnAuthList, parseCertificateChain } from "../stir/cert-parse.js";
import {
  type ChainLink,
  DIV_O_PPT,
  DIV_PPT,
  type DiversionPpt,
  divClaims,
  isDiversionPpt,
  passportsToStore,
} from "../stir/diversion.js";
import { MAX_PASSPORT_LENGTH as MAX_SEALED_PASSPORT } from "../stir/envelope.js";
import { createPassport, decodePassport } from "../stir/passport.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import { coversTn } from "../stir/tnauthlist.js";
import type { SigningCredential } from "./as.js";
import type { FetchLike } from "./cps-client.js";
import type { Discovery } from "./discovery.js";
import { StirClientError } from "./errors.js";
import { KeyRecordCheck, type KeyRecordCheckOptions, type SkippedKey } from "./key-records.js";
import { clock, ms, type StoredCopy, storeAtDestination } from "./placement.js";
import { type OhttpRelay, type RelayTransportOptions, relayFor } from "./relay.js";
import type { StoreTokenSource } from "./store-tokens.js";
import type { CallVerification } from "./vs.js";

export interface DivertingServiceOptions extends RelayTransportOptions, Omit<KeyRecordCheckOptions, "fetch"> {
  /** A credential covering every number this service diverts from. */
  readonly credential: SigningCredential;
  /** Where the new destination's CPS and keys are. */
  readonly discovery: Discovery;
  /** Storage tokens; default `untokenedStores` (only for a CPS with ALLOW_UNTOKENED_STORES). */
  readonly tokens?: StoreTokenSource;
  readonly fetch?: FetchLike;
  /** Seconds since the epoch (default: clock), for `iat`. */
  readonly now?: () => number;
}

export interface DivertInput {
  /**
   * The call to divert, as this number's VS verified it: its verified PASSporT and, when it was
   * itself diverted here, the chain behind it. Give this or `passports`.
   */
  readonly call?: CallVerification;
  /**
   * Or the PASSporTs themselves, full form: the one for `from` first, then (for an already diverted
   * call) the ones it follows back to the original. The caller vouches that they were verified.
   */
  readonly passports?: readonly string[];
  /** The number diverted from (this service's number); default `call.to`. */
  readonly from?: string;
  /** The new destination. */
  readonly to: string;
  /**
   * `div-o` nests the diverted PASSporT (RFC 8816 §6.2's SHOULD); `div` stores it beside. Default:
   * `div-o` when the result fits in an envelope (1022 bytes), else `div`.
   */
  readonly kind?: DiversionPpt;
}

export interface DivertedCall {
  /** Always true when this resolves: every copy is stored, the call may be forwarded. */
  readonly proceed: true;
  readonly from: CanonicalTn;
  readonly to: CanonicalTn;
  readonly kind: DiversionPpt;
  /** The new diversion PASSporT (full form). */
  readonly passport: string;
  /** Every PASSporT stored for `to` (the new one first), each sealed to each of `to`'s keys. */
  readonly passports: readonly string[];
  readonly cps: string;
  readonly stored: readonly StoredCopy[];
  readonly skipped: readonly SkippedKey[];
  readonly timings: {
    sign: number;
    discover: number;
    seal: number;
    tokens: number;
    store: number;
    total: number;
  };
}

const ALL_PPTS = ["shaken", DIV_PPT, DIV_O_PPT];

/**
 * Forwards calls out of band for the numbers its credential covers.
 *
 * @example
 * const carolVs = new VerificationService({ keys: carolKeys, trustAnchors, cps, supportedPpt: ["shaken", "div", "div-o"] });
 * const call = await carolVs.verifyCall({ to: carol, calling: alice });
 * const divert = new DivertingService({ credential: carolCredential, discovery, trustAnchors });
 * if (call.verdict === "verified") await divert.divert({ call, to: bob });  // then forward the call to Bob
 */
export class DivertingService {
  readonly #options: DivertingServiceOptions;
  readonly #relay: OhttpRelay | undefined;
  readonly #check: KeyRecordCheck;
  #chain: Promise<CertificateChain> | undefined;

  constructor(options: DivertingServiceOptions) {
    if (!options.validator && !options.trustAnchors?.length) {
      throw new TypeError("A diverting service needs trust anchors or a validator for key records");
    }
    this.#options = options;
    this.#relay = relayFor(options.relay, options.fetch);
    this.#check = new KeyRecordCheck(options);
  }

  /** Throws `NOT_AUTHORITATIVE` unless the credential covers `from` now (RFC 8946 §3). */
  async #authorize(from: CanonicalTn, now: number): Promise<void> {
    const c = this.#options.credential.chain;
    this.#chain ??= typeof c === "string" ? parseCertificateChain(c) : Promise.resolve(c);
    const leaf = (await this.#chain).certificates[0];
    if (leaf === undefined) throw new CpsError("CERT_MALFORMED", "The credential has no certificate");
    const at = new Date(now * 1000);
    if (at < leaf.notBefore || at > leaf.notAfter || !coversTn(certificateTnAuthList(leaf) ?? [], from)) {
      throw new StirClientError(
        "NOT_AUTHORITATIVE",
        "The signing credential does not cover the number diverted from",
      );
    }
  }

  /**
   * Signs the diversion and stores it (with what the next VS needs of the chain) for `to`; resolves
   * when every copy is stored. Throws `StirClientError` (NOT_AUTHORITATIVE, NO_KEYS, NO_VALID_KEYS,
   * STORE_FAILED, NO_TOKEN), `CpsError` (DIVERSION_UNLINKED: `from` is not a destination of the
   * PASSporT; PASSPORT_TOO_LARGE: an explicit `div-o` that does not fit an envelope) or a CPS answer.
   * @example
   * const { kind, stored } = await divert.divert({ passports: [original], from: carol, to: bob });
   */
  async divert(input: DivertInput): Promise<DivertedCall> {
    const start = clock();
    const chain = this.#chainOf(input);
    const fromText = input.from ?? input.call?.to;
    if (fromText === undefined) throw new TypeError("divert needs `from` (or a `call`)");
    const from = canonicalTn(fromText);
    const to = canonicalTn(input.to);
    const now = this.#options.now?.() ?? Date.now() / 1000;
    await this.#authorize(from, now);

    const t = clock();
    const previous = chain[0] as ChainLink;
    const sign = async (kind: DiversionPpt) =>
      createPassport(
        {
          x5u: this.#options.credential.x5u,
          ppt: kind,
          claims: divClaims(previous.decoded.claims, {
            from,
            to,
            iat: Math.floor(now),
            ...(kind === DIV_O_PPT ? { opt: previous.passport } : {}),
          }),
        },
        this.#options.credential.privateKey,
      );
    let kind: DiversionPpt = input.kind ?? DIV_O_PPT;
    let passport = await sign(kind);
    // An envelope holds 1022 bytes (envelope v1): a nested chain soon outgrows it. Unless div-o was
    // asked for, fall back to div, which stores the earlier PASSporTs beside instead of inside.
    if (passport.length > MAX_SEALED_PASSPORT && input.kind === undefined) {
      kind = DIV_PPT;
      passport = await sign(kind);
    }
    if (passport.length > MAX_SEALED_PASSPORT) {
      throw new CpsError("PASSPORT_TOO_LARGE", "The div-o PASSporT does not fit an envelope: use div");
    }
    const signMs = ms(t);

    const passports = [passport, ...passportsToStore(chain, kind)];
    // The earlier PASSporTs stored beside a plain div name the number diverted from, not `to`: the CPS
    // would judge a report of one DEST_MISMATCH (RFC 8816 §7.5) and revoke this service's token. So
    // they go without a feedback tag; only the new PASSporT (index 0), which names `to`, carries one.
    const { cps, skipped, stored, timings, discover } = await storeAtDestination({
      discovery: this.#options.discovery,
      check: this.#check,
      to,
      nowSeconds: now,
      passports,
      tokens: this.#options.tokens,
      fetch: this.#options.fetch,
      relay: this.#relay,
      requireRelay: this.#options.requireRelay,
      feedbackTags: (index) => index === 0,
    });
    return {
      proceed: true,
      from,
      to,
      kind,
      passport,
      passports,
      cps,
      stored,
      skipped,
      timings: { sign: signMs, discover, ...timings, total: ms(start) },
    };
  }

  /** The chain being diverted, newest first, decoded (shapes only: the caller verified it). */
  #chainOf(input: DivertInput): ChainLink[] {
    let passports: readonly string[];
    if (input.call) {
      const verified = input.call.verified;
      if (input.call.verdict !== "verified" || verified === undefined) {
        throw new TypeError("Only a verified call can be diverted");
      }
      passports = verified.diversion?.links.map((l) => l.passport) ?? [verified.passport];
    } else passports = input.passports ?? [];
    if (passports.length === 0) throw new TypeError("divert needs the call's PASSporTs");
    return passports.map((passport) => {
      const decoded = decodePassport(passport, { supportedPpt: ALL_PPTS });
      const ppt = decoded.header.ppt;
      return { passport, decoded, kind: isDiversionPpt(ppt) ? ppt : "original" };
    });
  }
}
