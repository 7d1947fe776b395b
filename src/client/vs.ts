/**
 * Out-of-band verification service (RFC 8816 §8.2).
 *   Step 1: retrieve every blob for the called number and try to open each with each private key
 *           (blobs that open with none are other callees' or the CPS's dummies: normal, not errors);
 *   Step 2: drop PASSporTs with an unsupported `ppt`;
 *   Step 3: keep those whose `orig` is the calling number presented in signalling (and, as RFC 8224
 *           §6.2 step 2 asks of any VS, whose `dest` names the called number: a PASSporT seen in band
 *           and re-sealed to this callee by someone else must not pass, RFC 8816 §7.4);
 *   Step 4: the signing credential (x5u) is valid, chains to a trusted CA and covers `orig`;
 *   Step 5: `iat` is fresh (local policy, default 60 s);
 *   Step 6: the signature is valid.
 * Step 5 is judged before step 4 fetches the x5u (failures still report their own step number): a
 * stale PASSporT never makes the callee's device fetch a URL its sender chose.
 * The verdict is `verified` (at least one PASSporT passed), `no-passport` (nothing opened) or
 * `failed` (something opened, nothing passed), with the reason for every candidate.
 */
import type { X509Certificate } from "@peculiar/x509";
import { base64url } from "jose";
import { StirOobError } from "../errors.js";
import type { CertificateChain } from "../stir/cert-parse.js";
import { CertificateValidator } from "../stir/cert-validate.js";
import { ENVELOPE_TEXT_LENGTH, openPassport } from "../stir/envelope.js";
import {
  checkFreshness,
  DEFAULT_FRESHNESS_SECONDS,
  type DecodedPassport,
  decodePassport,
  verifyPassportSignature,
} from "../stir/passport.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import { coversTn } from "../stir/tnauthlist.js";
import { X5uFetcher, type X5uUrlPolicy } from "../stir/x5u.js";
import { CpsClient, type FetchLike, type ListedBlob } from "./cps-client.js";
import type { Discovery } from "./discovery.js";
import { clock, ms } from "./placement.js";
import { type OhttpRelay, type RelayTransportOptions, relayFor } from "./relay.js";

/** One of the callee's private keys (X25519), with an id for reports. */
export interface CalleeKey {
  readonly kid: string;
  readonly privateKey: CryptoKey | CryptoKeyPair;
}

export type Verdict = "verified" | "no-passport" | "failed";

/** Why a candidate PASSporT did not pass; `step` is the §8.2 step that refused it. */
export interface CandidateFailure {
  readonly step: 2 | 3 | 4 | 5 | 6;
  /** Stable code: a CpsError code (`PASSPORT_STALE`, `CERT_UNTRUSTED`, ...) or `ORIG_MISMATCH` / `DEST_MISMATCH`. */
  readonly code: string;
  readonly message: string;
}

/** One distinct PASSporT that opened with one of the callee's keys. */
export interface Candidate {
  readonly passport: string;
  /** CPS ids of the blobs that held it (one per callee key it was sealed to). */
  readonly blobIds: readonly string[];
  /** Key ids that opened it. */
  readonly kids: readonly string[];
  readonly orig?: string;
  readonly dest?: readonly string[];
  readonly iat?: number;
  readonly attest?: string;
  readonly x5u?: string;
  /** Subject of the signing certificate, when step 4 got that far. */
  readonly signer?: string;
  readonly ok: boolean;
  readonly failure?: CandidateFailure;
}

export interface VsTimings {
  /** Step 1, the CPS round trip (0 when the blobs were given). */
  retrieve: number;
  /** Step 1, trying every blob with every key. */
  open: number;
  /** Steps 2-6 over the candidates. */
  verify: number;
  total: number;
}

export interface CallVerification {
  readonly verdict: Verdict;
  readonly to: CanonicalTn;
  readonly calling: CanonicalTn;
  /** Blobs examined (real and dummies; the CPS always adds dummies). */
  readonly examined: number;
  /** Blobs that opened with one of the keys. */
  readonly opened: number;
  readonly candidates: readonly Candidate[];
  /** The first candidate that passed, when the verdict is `verified`. */
  readonly verified?: Candidate;
  readonly timings: VsTimings;
}

/** The result of step 1 for one number: what opened, reusable for several calls (§5.5). */
export interface OpenedBlobs {
  readonly to: CanonicalTn;
  readonly examined: number;
  readonly opened: number;
  /** Distinct PASSporT -> blob ids and key ids. */
  readonly passports: ReadonlyMap<string, { blobIds: string[]; kids: string[] }>;
  readonly timings: { retrieve: number; open: number };
}

export interface VerificationServiceOptions extends RelayTransportOptions {
  /** Every private key of the callee; each blob is tried with each (a callee may have several). */
  readonly keys: readonly CalleeKey[];
  /** Trusted roots (STI-PA list); or give a `validator`. */
  readonly trustAnchors?: readonly X509Certificate[];
  readonly validator?: CertificateValidator;
  /**
   * Resolves an x5u URL to the signer's chain; default an `X5uFetcher` (cached) held to the x5u URL
   * policy (https:443, a public DNS name, no IP literals: docs/passport-and-credentials.md).
   */
  readonly resolveCertificate?: (x5u: string) => Promise<CertificateChain>;
  /** Policy of the default resolver: an allow-list of repository hosts, or loopback for local demos. */
  readonly x5uPolicy?: X5uUrlPolicy;
  /** Where to retrieve: a CPS base URL, or discovery of the CPS serving the number. */
  readonly cps?: string;
  readonly discovery?: Discovery;
  readonly fetch?: FetchLike;
  /** `iat` freshness window in seconds (step 5, default 60). */
  readonly freshnessSeconds?: number;
  /** Supported `ppt` values (step 2, default `["shaken"]`). */
  readonly supportedPpt?: readonly string[];
  /** Require `dest` to name the called number (default true). */
  readonly checkDest?: boolean;
  /** Blobs opened concurrently (default 64). */
  readonly concurrency?: number;
  /** Seconds since the epoch (default: clock). */
  readonly now?: () => number;
  /** Called as blobs are tried during step 1 (for progress displays in bulk retrieval). */
  readonly onProgress?: (done: number, total: number) => void;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The blob bytes of a listed entry, or undefined when it cannot be one. Looser than the CPS's decoder
 * on purpose (no canonical-encoding check): a VS only needs the bytes, and HPKE authenticates them.
 */
function blobBytes(text: string): Uint8Array | undefined {
  const compact = text.length === ENVELOPE_TEXT_LENGTH ? text : text.replace(/\s+/g, "");
  if (compact.length !== ENVELOPE_TEXT_LENGTH || !B64URL.test(compact)) return undefined;
  try {
    return base64url.decode(compact);
  } catch {
    return undefined;
  }
}

function failure(step: CandidateFailure["step"], err: unknown): CandidateFailure {
  if (err instanceof StirOobError) return { step, code: err.code, message: err.message };
  return { step, code: "INTERNAL", message: err instanceof Error ? err.message : "Unexpected failure" };
}

/** Runs `fn` over `items` with at most `limit` in flight, keeping order. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * An out-of-band verification service for one callee (one or more numbers, one or more keys).
 *
 * @example
 * const vs = new VerificationService({ keys: [{ kid: "bob-1", privateKey }], trustAnchors: [root],
 *   cps: "https://cps.example.com" });
 * const result = await vs.verifyCall({ to: "+2 222 555 2222", calling: "+1 111 555 1111" });
 * if (result.verdict === "verified") showVerified(result.verified?.orig);
 */
export class VerificationService {
  readonly #options: VerificationServiceOptions;
  readonly #validator: CertificateValidator;
  readonly #resolve: (x5u: string) => Promise<CertificateChain>;
  readonly #fetch: FetchLike;
  readonly #relay: OhttpRelay | undefined;

  constructor(options: VerificationServiceOptions) {
    if (options.keys.length === 0)
      throw new TypeError("A verification service needs at least one private key");
    if (!options.validator && !options.trustAnchors?.length) {
      throw new TypeError("A verification service needs trust anchors or a validator");
    }
    this.#options = options;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    // Retrievals go through the relay; x5u fetches do not (they go to the signer's repository).
    this.#relay = relayFor(options.relay, options.fetch);
    this.#validator = options.validator ?? new CertificateValidator({ anchors: options.trustAnchors ?? [] });
    if (options.resolveCertificate) {
      this.#resolve = options.resolveCertificate;
    } else {
      const fetcher = new X5uFetcher({
        fetch: this.#fetch,
        allowLoopbackHttp: options.x5uPolicy?.allowLoopback ?? false,
        allowedHosts: options.x5uPolicy?.allowedHosts ?? [],
      });
      this.#resolve = (url) => fetcher.fetchChain(url);
    }
  }

  #nowSeconds(): number {
    return Math.floor(this.#options.now?.() ?? Date.now() / 1000);
  }

  async #cps(to: CanonicalTn): Promise<CpsClient> {
    let base = this.#options.cps;
    if (base === undefined) {
      if (!this.#options.discovery)
        throw new TypeError("A verification service needs a cps URL or discovery");
      base = (await this.#options.discovery.locate(to)).cps;
    }
    return new CpsClient({
      baseUrl: base,
      fetch: this.#fetch,
      ...(this.#relay ? { relay: this.#relay } : {}),
      ...(this.#options.requireRelay ? { requireRelay: true } : {}),
    });
  }

  /**
   * Step 1 only: retrieves every blob for `to` (or takes `blobs`) and opens what it can.
   * @example
   * const opened = await vs.open("+2 222 555 2222");  // then vs.judge(opened, calling) per incoming call
   */
  async open(toInput: string, blobs?: readonly ListedBlob[]): Promise<OpenedBlobs> {
    const to = canonicalTn(toInput);
    let t = clock();
    const list = blobs ?? (await (await this.#cps(to)).list(to));
    const retrieve = blobs ? 0 : ms(t);

    t = clock();
    const keys = this.#options.keys;
    const onProgress = this.#options.onProgress;
    let done = 0;
    onProgress?.(0, list.length);
    const tick = () => onProgress?.(++done, list.length);
    const results = await pool(list, this.#options.concurrency ?? 64, async (entry) => {
      const bytes = blobBytes(entry.blob);
      if (bytes === undefined) {
        tick();
        return undefined; // not a blob: cannot open, like a dummy
      }
      for (const key of keys) {
        try {
          const passport = await openPassport(key.privateKey, to, bytes);
          tick();
          return { id: entry.id, kid: key.kid, passport };
        } catch {
          // ENVELOPE_OPEN_FAILED: another callee's blob or a dummy; try the next key.
        }
      }
      tick();
      return undefined;
    });
    const passports = new Map<string, { blobIds: string[]; kids: string[] }>();
    let opened = 0;
    for (const r of results) {
      if (!r) continue;
      opened++;
      const e = passports.get(r.passport) ?? { blobIds: [], kids: [] };
      e.blobIds.push(r.id);
      if (!e.kids.includes(r.kid)) e.kids.push(r.kid);
      passports.set(r.passport, e);
    }
    return { to, examined: list.length, opened, passports, timings: { retrieve, open: ms(t) } };
  }

  /** Steps 2-6 for one opened PASSporT. */
  async #check(
    passport: string,
    to: CanonicalTn,
    calling: CanonicalTn,
    now: number,
  ): Promise<Omit<Candidate, "passport" | "blobIds" | "kids">> {
    const o = this.#options;
    // Step 2: ppt support (and a well-formed PASSporT at all).
    let decoded: DecodedPassport;
    try {
      decoded = decodePassport(passport, { supportedPpt: o.supportedPpt ?? ["shaken"] });
    } catch (err) {
      return { ok: false, failure: failure(2, err) };
    }
    const { claims, header } = decoded;
    const orig = "tn" in claims.orig ? claims.orig.tn : claims.orig.uri;
    const info = {
      orig,
      dest: [...(claims.dest.tn ?? []), ...(claims.dest.uri ?? [])],
      iat: claims.iat,
      x5u: header.x5u,
      ...(claims.attest === undefined ? {} : { attest: claims.attest }),
    };
    // Step 3: orig matches the calling number presented.
    if (!("tn" in claims.orig) || claims.orig.tn !== calling) {
      return {
        ...info,
        ok: false,
        failure: { step: 3, code: "ORIG_MISMATCH", message: "orig is not the calling number presented" },
      };
    }
    if ((o.checkDest ?? true) && !(claims.dest.tn ?? []).includes(to)) {
      return {
        ...info,
        ok: false,
        failure: { step: 3, code: "DEST_MISMATCH", message: "dest does not name the called number" },
      };
    }
    // Step 5 (iat freshness) is judged before step 4 fetches anything: a stale PASSporT never makes the
    // callee's device fetch an x5u that the sender chose (threat model #10). Reported as step 5.
    try {
      checkFreshness(claims.iat, { now, freshnessSeconds: o.freshnessSeconds ?? DEFAULT_FRESHNESS_SECONDS });
    } catch (err) {
      return { ...info, ok: false, failure: failure(5, err) };
    }
    // Step 4: the credential is valid, trusted and covers orig.
    let cert: Awaited<ReturnType<CertificateValidator["validate"]>>;
    try {
      cert = await this.#validator.validate(await this.#resolve(header.x5u), new Date(now * 1000));
    } catch (err) {
      return { ...info, ok: false, failure: failure(4, err) };
    }
    const signer = cert.leaf.subject;
    const numbered = cert.tnAuthList.some((e) => e.type !== "spc");
    // An SPC-only certificate (SHAKEN) speaks for a carrier, not for numbers: nothing to compare.
    if (numbered && !coversTn(cert.tnAuthList, calling)) {
      return {
        ...info,
        signer,
        ok: false,
        failure: { step: 4, code: "CERT_NOT_AUTHORISED", message: "The certificate does not cover orig" },
      };
    }
    // Step 6: the signature.
    try {
      await verifyPassportSignature(passport, cert.publicKey);
    } catch (err) {
      return { ...info, signer, ok: false, failure: failure(6, err) };
    }
    return { ...info, signer, ok: true };
  }

  /**
   * Steps 2-6 and the verdict for one incoming call, over what `open` found.
   * @example
   * const opened = await vs.open("+2 222 555 2222");
   * for (const call of ringing) console.log((await vs.judge(opened, call.from)).verdict);
   */
  async judge(opened: OpenedBlobs, callingInput: string): Promise<CallVerification> {
    const calling = canonicalTn(callingInput);
    const t = clock();
    const now = this.#nowSeconds();
    const candidates: Candidate[] = await Promise.all(
      [...opened.passports].map(async ([passport, where]) => ({
        passport,
        blobIds: where.blobIds,
        kids: where.kids,
        ...(await this.#check(passport, opened.to, calling, now)),
      })),
    );
    const verified = candidates.find((c) => c.ok);
    const verdict: Verdict = candidates.length === 0 ? "no-passport" : verified ? "verified" : "failed";
    const verify = ms(t);
    return {
      verdict,
      to: opened.to,
      calling,
      examined: opened.examined,
      opened: opened.opened,
      candidates,
      ...(verified ? { verified } : {}),
      timings: { ...opened.timings, verify, total: opened.timings.retrieve + opened.timings.open + verify },
    };
  }

  /**
   * The whole of §8.2 for one ringing call: retrieve, open, steps 2-6, verdict.
   * @example
   * const { verdict, candidates } = await vs.verifyCall({ to: "+2 222 555 2222", calling: "+1 111 555 1111" });
   */
  async verifyCall(input: {
    to: string;
    calling: string;
    blobs?: readonly ListedBlob[];
  }): Promise<CallVerification> {
    return this.judge(await this.open(input.to, input.blobs), input.calling);
  }

  /**
   * Bulk retrieval (§5.5, a call centre): one retrieval for the number, a verdict per calling number.
   * @example
   * const verdicts = await vs.verifyCalls("+2 222 555 2222", ["+1 111 555 1111", "+1 111 555 1112"]);
   */
  async verifyCalls(to: string, callingNumbers: readonly string[]): Promise<CallVerification[]> {
    const opened = await this.open(to);
    return Promise.all(callingNumbers.map((c) => this.judge(opened, c)));
  }
}
