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
 * stale PASSporT never makes the callee's device fetch a URL its sender chose. Freshness is judged at
 * the call time (`at`, default now), never at the store time: the CPS TTL runs from the store.
 * Replay (also step 5, the freshness step: RFC 8224 §6.2 step 4 puts replay detection there): a
 * PASSporT that passed every step is then claimed for this call in a replay cache kept for the
 * freshness window, so one stored PASSporT verifies one call only; a later call presenting it gets
 * `REPLAYED` (unless `allowForking`, RFC 8224 §6.2: one call forked to several devices). Only the
 * PASSporT that verifies is claimed: a failed check never uses up a genuine PASSporT.
 * The verdict is `verified` (at least one PASSporT passed), `no-passport` (nothing opened) or
 * `failed` (something opened, nothing passed), with the reason for every candidate.
 * Several CPSes for the number (§10, discovery's `cpses`): step 1 retrieves from each concurrently and
 * merges what they hold (the same PASSporT sealed afresh for each CPS is one candidate); a CPS that has
 * not answered `cpsDeadlineMs` after the retrieval began no longer holds the verdict once another has
 * answered, and `sources` reports each CPS as answered, failed or timed out.
 */
import type { X509Certificate } from "@peculiar/x509";
import { base64url } from "jose";
import { StirOobError } from "../errors.js";
import { encodeBase64url } from "../stir/base64url.js";
import type { CertificateChain } from "../stir/cert-parse.js";
import type { CertificateValidator } from "../stir/cert-validate.js";
import { crlCheckingValidator } from "../stir/crl.js";
import {
  DIV_O_PPT,
  DIV_PPT,
  divertedFrom,
  isDiversionPpt,
  linkProblem,
  verifyChain,
} from "../stir/diversion.js";
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
import { type X5uUrlPolicy, x5uChainResolver } from "../stir/x5u.js";
import { CpsClient, type FetchLike, type ListedBlob } from "./cps-client.js";
import type { Discovery } from "./discovery.js";
import { type ReportOutcome, reportCandidates } from "./feedback.js";
import { type CpsFault, checkDeadline, faultOf, settleUntil } from "./multi-cps.js";
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
  /**
   * Stable code: a CpsError code (`PASSPORT_STALE`, `CERT_UNTRUSTED`, ...), `ORIG_MISMATCH` /
   * `DEST_MISMATCH` (step 3) or `REPLAYED` (step 5: it already verified another call).
   * For a diversion chain also `DIVERSION_UNLINKED` / `DIVERSION_TOO_LONG` / `DIVERSION_TOO_COMPLEX`
   * (step 3; the last: more than MAX_CHAIN_CHECKS link checks), and
   * `DIVERSION_LINK` (step 3) for an earlier PASSporT of a chain stored beside its diversion: its dest
   * is the number diverted from, and it is judged within that chain (never a sign of a bogus store).
   */
  readonly code: string;
  readonly message: string;
  /**
   * For a diversion PASSporT (RFC 8946): which link of its chain failed, 0 = the PASSporT itself,
   * 1 = the one it follows, and so on back to the original.
   */
  readonly link?: number;
}

/** One PASSporT of a verified diversion chain (RFC 8946), as reported. */
export interface DiversionLink {
  /** `div` / `div-o` (a diversion), or `original` (the PASSporT of the first call leg). */
  readonly kind: "div" | "div-o" | "original";
  readonly passport: string;
  /** The number this link diverted from (its `div`); absent for the original. */
  readonly from?: string;
  /** Its `dest` numbers. */
  readonly dest: readonly string[];
  readonly iat: number;
  readonly x5u: string;
  /** Subject of the signing certificate. */
  readonly signer?: string;
}

/** How a verified call reached the called number (RFC 8946; RFC 8816 §6.2). */
export interface Diversion {
  /** The numbers the call was diverted from, in call order: the original's destination first. */
  readonly via: readonly string[];
  /** Every PASSporT of the chain, from the one for the called number back to the original. */
  readonly links: readonly DiversionLink[];
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
  /** SHAKEN `origid` (RFC 8588 §4): the originating carrier's opaque id for where the call entered. */
  readonly origid?: string;
  readonly x5u?: string;
  /** Subject of the signing certificate, when step 4 got that far. */
  readonly signer?: string;
  /** A diversion PASSporT whose chain verified: the path (its `attest`/`origid` are the original's). */
  readonly diversion?: Diversion;
  readonly ok: boolean;
  readonly failure?: CandidateFailure;
}

/** What one CPS of the number gave step 1 (several CPSes, §10). */
export interface RetrievalSource {
  readonly cps: string;
  /** `answered`: its list is merged in; `failed`: refused or unreachable; `timed-out`: no answer by the deadline. */
  readonly outcome: "answered" | "failed" | "timed-out";
  /** Blobs it listed (real and dummies), when it answered. */
  readonly blobs?: number;
  readonly error?: CpsFault;
  /** Milliseconds from the start of the retrieval to its answer (absent when timed out). */
  readonly ms?: number;
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
  /** The candidate that verified this call (claimed in the replay cache), when `verified`. */
  readonly verified?: Candidate;
  /** `origid` of the verified PASSporT (RFC 8588 §4), when it has one. */
  readonly origid?: string;
  /** When the verified call was diverted to the called number (RFC 8946): the chain it came through. */
  readonly diversion?: Diversion;
  /** The call time freshness was judged at (seconds since the epoch). */
  readonly at: number;
  readonly timings: VsTimings;
  /** Each CPS retrieved from, when the number has several (§10): answered, failed or timed out. */
  readonly sources?: readonly RetrievalSource[];
}

/** The result of step 1 for one number: what opened, reusable for several calls (§5.5). */
export interface OpenedBlobs {
  readonly to: CanonicalTn;
  readonly examined: number;
  readonly opened: number;
  /** Distinct PASSporT -> blob ids and key ids. */
  readonly passports: ReadonlyMap<string, { blobIds: string[]; kids: string[] }>;
  readonly timings: { retrieve: number; open: number };
  /** Each CPS retrieved from, when the number has several (§10). */
  readonly sources?: readonly RetrievalSource[];
}

/**
 * Where a VS remembers which call each verified PASSporT verified (the replay cache). The default is
 * a `MemoryReplayStore`; VS instances that serve one callee side by side (several devices, several
 * processes) share one store, e.g. Redis `SET key callId NX EXAT expiresAt` then `GET key`.
 */
export interface ReplayStore {
  /**
   * Atomically: when `key` is held by no call (or its entry has expired), record it for `callId`
   * until `expiresAt`; then return the call id that holds it (`callId` itself on first use).
   * Times are seconds since the epoch on the VS clock (`now`).
   */
  claim(key: string, callId: string, expiresAt: number, now: number): string | Promise<string>;
}

/**
 * The default replay cache: in memory, entries dropped once expired, at most `maxEntries` (default
 * 100,000). When full of live entries the oldest is evicted (counted in `evicted`): only PASSporTs
 * that verified a call are entered (two keys per plain PASSporT, one per link of a diversion chain),
 * so filling it takes tens of thousands of genuine calls within one window.
 */
export class MemoryReplayStore implements ReplayStore {
  readonly #entries = new Map<string, { callId: string; expiresAt: number }>();
  readonly #max: number;
  #evicted = 0;

  constructor(options: { maxEntries?: number } = {}) {
    this.#max = options.maxEntries ?? 100_000;
    if (!(Number.isInteger(this.#max) && this.#max > 0))
      throw new TypeError("maxEntries is a positive integer");
  }

  claim(key: string, callId: string, expiresAt: number, now: number): string {
    const held = this.#entries.get(key);
    if (held && held.expiresAt > now) return held.callId;
    if (held) this.#entries.delete(key);
    if (this.#entries.size >= this.#max) {
      for (const [k, e] of this.#entries) if (e.expiresAt <= now) this.#entries.delete(k);
      // Map order is insertion order: the first entries are the oldest claims.
      for (const k of this.#entries.keys()) {
        if (this.#entries.size < this.#max) break;
        this.#entries.delete(k);
        this.#evicted++;
      }
    }
    this.#entries.set(key, { callId, expiresAt });
    return callId;
  }

  /** Live and expired entries currently held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Entries evicted before they expired because the cache was full. */
  get evicted(): number {
    return this.#evicted;
  }
}

/**
 * What one judgement shares between its candidates: each PASSporT decoded once, each link check (steps
 * 5, 4, 6 for one PASSporT and the number it must cover) run once, the signer each check found.
 */
interface Judgement {
  readonly decode: (jws: string) => DecodedPassport;
  /** The diversion PASSporTs of the pool, decoded (for DIVERSION_LINK). */
  readonly diversions: () => readonly DecodedPassport[];
  readonly checks: Map<string, Promise<CandidateFailure | undefined>>;
  readonly signers: Map<string, string>;
}

function newJudgement(supportedPpt: readonly string[], pool: readonly string[]): Judgement {
  const decoded = new Map<string, DecodedPassport | DecodeFailure>();
  const decode = (jws: string): DecodedPassport => {
    let d = decoded.get(jws);
    if (d === undefined) {
      try {
        d = decodePassport(jws, { supportedPpt });
      } catch (err) {
        d = { error: err };
      }
      decoded.set(jws, d);
    }
    if ("error" in d) throw d.error;
    return d;
  };
  let diversions: DecodedPassport[] | undefined;
  return {
    decode,
    // Recognised even when diversion is not enabled here (decoded with the diversion ppts only).
    diversions: () => {
      diversions ??= pool.flatMap((p) => {
        try {
          const next = decodePassport(p, { supportedPpt: [DIV_PPT, DIV_O_PPT] });
          return isDiversionPpt(next.header.ppt) ? [next] : [];
        } catch {
          return [];
        }
      });
      return diversions;
    },
    checks: new Map(),
    signers: new Map(),
  };
}

/** A memoised decoding failure. */
interface DecodeFailure {
  readonly error: unknown;
}

/**
 * The replay-cache key of a PASSporT: SHA-256 of its signing input (header and payload), never of the
 * signature: ES256 signatures are malleable ((r, n - s) verifies too), so keying on the signature
 * would let a re-encoded copy of one PASSporT verify a second call.
 */
export async function replayKey(passport: string): Promise<string> {
  const signingInput = passport.slice(0, passport.lastIndexOf("."));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(signingInput));
  return encodeBase64url(new Uint8Array(digest));
}

/** Per-call options of `judge` and `verifyCall`. */
export interface CallOptions {
  /** When the call arrived (seconds since the epoch, or a Date); `iat` freshness is judged at it. Default now. */
  readonly at?: number | Date;
  /**
   * Identifies the call: judging the same call again (a watcher, a retry) with the same `callId`
   * finds the PASSporT it already claimed and verifies again. Default: a fresh id per judgment.
   */
  readonly callId?: string;
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
  /**
   * Supported `ppt` values (step 2, default `["shaken", "div", "div-o"]`). With `"div"` and/or
   * `"div-o"` a forwarded call verifies (RFC 8946, docs/diversion.md): a diversion PASSporT is only
   * ever verified as the end of a chain back to an original PASSporT, never on its own. Leave them out
   * to treat every diverted call as failed.
   */
  readonly supportedPpt?: readonly string[];
  /** Diversions a chain may hold (default 3, at most 8). */
  readonly maxDiversions?: number;
  /** Require `dest` to name the called number (default true). */
  readonly checkDest?: boolean;
  /** Blobs opened concurrently (default 64). */
  readonly concurrency?: number;
  /** Seconds since the epoch (default: clock). */
  readonly now?: () => number;
  /**
   * The replay cache (default: a `MemoryReplayStore` of this instance). Share one across the VS
   * instances of one callee, or replays to another instance go unnoticed.
   */
  readonly replayStore?: ReplayStore;
  /**
   * Let one PASSporT verify several calls (RFC 8224 §6.2 forking: one call ringing several devices
   * that verify independently). Off by default: then a second call with the PASSporT is `REPLAYED`.
   */
  readonly allowForking?: boolean;
  /** Called as blobs are tried during step 1 (for progress displays in bulk retrieval). */
  readonly onProgress?: (done: number, total: number) => void;
  /**
   * Decoy polling (RFC 8816 §6.2, §13; a `DecoyPoller`, src/client/decoys.ts): before each retrieval it
   * sends retrievals of decoy numbers and holds this one back by its own random offset in the group.
   */
  readonly decoys?: { beforeRetrieval(to: CanonicalTn): Promise<void> };
  /**
   * Several CPSes for the number (§10): milliseconds from the start of step 1 after which a CPS that
   * has not answered is reported `timed-out` and skipped, once another has answered (default 2,000).
   * With no answer at all by then, the first answer is waited for. One CPS: waited for as always.
   */
  readonly cpsDeadlineMs?: number;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Step 2's default: SHAKEN and both diversion types (RFC 8946), checked as chains. */
export const DEFAULT_SUPPORTED_PPT: readonly string[] = ["shaken", "div", "div-o"];

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
  readonly #replay: ReplayStore;
  readonly #deadline: number;

  constructor(options: VerificationServiceOptions) {
    if (options.keys.length === 0)
      throw new TypeError("A verification service needs at least one private key");
    if (!options.validator && !options.trustAnchors?.length) {
      throw new TypeError("A verification service needs trust anchors or a validator");
    }
    this.#options = options;
    this.#deadline = checkDeadline(options.cpsDeadlineMs);
    this.#replay = options.replayStore ?? new MemoryReplayStore();
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    // Retrievals go through the relay; x5u fetches do not (they go to the signer's repository).
    this.#relay = relayFor(options.relay, options.fetch);
    // Revocation (docs/passport-and-credentials.md "Revocation"): the default validator checks the
    // CRLs a signer's certificates name, fetched directly (not through the relay) under the x5u policy.
    this.#validator =
      options.validator ??
      crlCheckingValidator(options.trustAnchors ?? [], {
        fetch: this.#fetch as typeof fetch,
        ...(options.x5uPolicy ? { policy: options.x5uPolicy } : {}),
      });
    this.#resolve =
      options.resolveCertificate ?? x5uChainResolver(this.#fetch as typeof fetch, options.x5uPolicy);
  }

  #nowSeconds(): number {
    return Math.floor(this.#options.now?.() ?? Date.now() / 1000);
  }

  /** Every CPS serving `to`: the `cps` option, or discovery's `cpses` (§10), first = its `cps`. */
  async #cpsBases(to: CanonicalTn): Promise<readonly string[]> {
    if (this.#options.cps !== undefined) return [this.#options.cps];
    if (!this.#options.discovery) throw new TypeError("A verification service needs a cps URL or discovery");
    return (await this.#options.discovery.locate(to)).cpses;
  }

  #client(baseUrl: string): CpsClient {
    return new CpsClient({
      baseUrl,
      fetch: this.#fetch,
      ...(this.#relay ? { relay: this.#relay } : {}),
      ...(this.#options.requireRelay ? { requireRelay: true } : {}),
    });
  }

  /**
   * Step 1's retrieval: one CPS as always (its error is the caller's); several (§10) concurrently,
   * their lists merged, a CPS without an answer by the deadline skipped once another has answered.
   * Throws the first CPS's error when none answered.
   */
  async #retrieve(to: CanonicalTn): Promise<{ list: ListedBlob[]; sources?: RetrievalSource[] }> {
    const bases = await this.#cpsBases(to);
    if (bases.length <= 1) return { list: await this.#client(bases[0] as string).list(to) };
    const started = clock();
    const tasks = bases.map((b) =>
      this.#client(b)
        .list(to)
        .then((blobs) => ({ blobs, ms: ms(started) })),
    );
    const results = await settleUntil(
      tasks,
      this.#deadline,
      (rs) => rs.some((r) => r?.status === "fulfilled"),
      started,
    );
    const list: ListedBlob[] = [];
    const sources = results.map((r, i): RetrievalSource => {
      const cps = bases[i] as string;
      if (r === undefined) return { cps, outcome: "timed-out" };
      if (r.status === "rejected") return { cps, outcome: "failed", error: faultOf(r.reason) };
      list.push(...r.value.blobs);
      return { cps, outcome: "answered", blobs: r.value.blobs.length, ms: r.value.ms };
    });
    if (!sources.some((s) => s.outcome === "answered")) {
      throw (results.find((r) => r?.status === "rejected") as PromiseRejectedResult).reason;
    }
    return { list, sources };
  }

  /**
   * Step 1 only: retrieves every blob for `to` (or takes `blobs`) and opens what it can.
   * @example
   * const opened = await vs.open("+2 222 555 2222");  // then vs.judge(opened, calling) per incoming call
   */
  async open(toInput: string, blobs?: readonly ListedBlob[]): Promise<OpenedBlobs> {
    const to = canonicalTn(toInput);
    let t = clock();
    if (!blobs) await this.#options.decoys?.beforeRetrieval(to);
    const got = blobs ? { list: blobs } : await this.#retrieve(to);
    const list = got.list;
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
    return {
      to,
      examined: list.length,
      opened,
      passports,
      timings: { retrieve, open: ms(t) },
      ...("sources" in got && got.sources ? { sources: got.sources } : {}),
    };
  }

  /**
   * Steps 2-6 for one opened PASSporT, judged at the call time `at` (seconds). `pool` is every
   * PASSporT opened for `to`: where a `div` PASSporT finds the one it follows (RFC 8946 §3).
   */
  async #check(
    passport: string,
    to: CanonicalTn,
    calling: CanonicalTn,
    at: number,
    pool: readonly string[],
    judgement: Judgement,
  ): Promise<Omit<Candidate, "passport" | "blobIds" | "kids">> {
    const o = this.#options;
    const supportedPpt = o.supportedPpt ?? DEFAULT_SUPPORTED_PPT;
    // Step 2: ppt support (and a well-formed PASSporT at all; div/div-o claim shapes, RFC 8946 §3, §5).
    let decoded: DecodedPassport;
    try {
      decoded = decodePassport(passport, { supportedPpt });
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
      ...(claims.origid === undefined ? {} : { origid: claims.origid }),
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
      // The original of a diverted call names the number diverted from (RFC 8946 §3): it is judged as
      // a link of the chain of the diversion PASSporT that follows it, not as a PASSporT for `to`.
      // Recognised even when diversion is not enabled here, so it is never reported as bogus (§7.5).
      const followed =
        !isDiversionPpt(header.ppt) &&
        judgement.diversions().some((next) => linkProblem(next, decoded) === undefined);
      const dest: CandidateFailure = followed
        ? { step: 3, code: "DIVERSION_LINK", message: "an earlier PASSporT of a diversion chain stored here" }
        : { step: 3, code: "DEST_MISMATCH", message: "dest does not name the called number" };
      return { ...info, ok: false, failure: dest };
    }
    // Steps 5, 4, 6 for one PASSporT whose signer must cover `covers`: `orig` for an original, the
    // `div` number for a diversion (RFC 8946 §3: the diverting service signs for the number it
    // diverts from, not for the caller). Memoised per judgement: a PASSporT that several candidates'
    // chains pass through costs one certificate validation and one signature check.
    const signers = judgement.signers;
    const verifyOne = (jws: string, d: DecodedPassport, covers: string, diverted: boolean) => {
      const key = `${diverted ? "div" : "orig"} ${covers} ${jws}`;
      let result = judgement.checks.get(key);
      if (result === undefined) {
        result = verifyOnce(jws, d, covers, diverted);
        judgement.checks.set(key, result);
      }
      return result;
    };
    const verifyOnce = async (
      jws: string,
      d: DecodedPassport,
      covers: string,
      diverted: boolean,
    ): Promise<CandidateFailure | undefined> => {
      // Step 5 (iat freshness) is judged before step 4 fetches anything: a stale PASSporT never makes
      // the callee's device fetch an x5u that the sender chose (threat model #10). Reported as step 5.
      try {
        checkFreshness(d.claims.iat, {
          now: at,
          freshnessSeconds: o.freshnessSeconds ?? DEFAULT_FRESHNESS_SECONDS,
        });
      } catch (err) {
        return failure(5, err);
      }
      // Step 4: the credential is valid, trusted and covers the number it vouches for.
      let cert: Awaited<ReturnType<CertificateValidator["validate"]>>;
      try {
        cert = await this.#validator.validate(await this.#resolve(d.header.x5u), new Date(at * 1000));
      } catch (err) {
        return failure(4, err);
      }
      signers.set(jws, cert.leaf.subject);
      const numbered = cert.tnAuthList.some((e) => e.type !== "spc");
      // An SPC-only certificate (SHAKEN) speaks for a carrier, not for numbers: nothing to compare for
      // orig. A diversion must show it covers the number diverted from, so it needs numbers.
      if ((numbered || diverted) && !coversTn(cert.tnAuthList, covers)) {
        const what = diverted ? "the number diverted from" : "orig";
        return { step: 4, code: "CERT_NOT_AUTHORISED", message: `The certificate does not cover ${what}` };
      }
      // Step 6: the signature.
      try {
        await verifyPassportSignature(jws, cert.publicKey);
      } catch (err) {
        return failure(6, err);
      }
      return undefined;
    };
    if (isDiversionPpt(header.ppt)) {
      // A diversion PASSporT verifies only as the end of a chain back to an original (RFC 8946 §3):
      // on its own it says nothing about who placed the call.
      const chain = await verifyChain(
        { passport, decoded, kind: header.ppt },
        {
          decode: judgement.decode,
          pool,
          check: (link) => verifyOne(link.passport, link.decoded, link.covers, link.kind !== "original"),
          ...(o.maxDiversions === undefined ? {} : { maxDiversions: o.maxDiversions }),
        },
      );
      const endSigner = signers.get(passport);
      const signed = endSigner === undefined ? {} : { signer: endSigner };
      if (!chain.ok) return { ...info, ...signed, ok: false, failure: chain.failure };
      const first = chain.links[chain.links.length - 1]?.decoded.claims;
      const links: DiversionLink[] = chain.links.map((l) => {
        const div = l.decoded.claims.div as { tn?: string } | undefined;
        const signer = signers.get(l.passport);
        return {
          kind: l.kind,
          passport: l.passport,
          ...(div?.tn === undefined ? {} : { from: div.tn }),
          dest: l.decoded.claims.dest.tn ?? [],
          iat: l.decoded.claims.iat,
          x5u: l.decoded.header.x5u,
          ...(signer === undefined ? {} : { signer }),
        };
      });
      return {
        ...info,
        // SHAKEN attestation and origid are the original's: a diversion PASSporT carries neither.
        ...(first?.attest === undefined ? {} : { attest: first.attest }),
        ...(first?.origid === undefined ? {} : { origid: first.origid }),
        ...signed,
        diversion: { via: divertedFrom(chain.links), links },
        ok: true,
      };
    }
    const failed = await verifyOne(passport, decoded, calling, false);
    const signer = signers.get(passport);
    return {
      ...info,
      ...(signer === undefined ? {} : { signer }),
      ok: failed === undefined,
      ...(failed ? { failure: failed } : {}),
    };
  }

  /**
   * Steps 2-6 and the verdict for one incoming call, over what `open` found.
   * @example
   * const opened = await vs.open("+2 222 555 2222");
   * for (const call of ringing) console.log((await vs.judge(opened, call.from)).verdict);
   */
  async judge(opened: OpenedBlobs, callingInput: string, call: CallOptions = {}): Promise<CallVerification> {
    const calling = canonicalTn(callingInput);
    const t = clock();
    const now = this.#nowSeconds();
    const at =
      call.at === undefined ? now : Math.floor(call.at instanceof Date ? call.at.getTime() / 1000 : call.at);
    if (!Number.isFinite(at)) throw new TypeError("`at` is a time");
    const pool = [...opened.passports.keys()];
    const judgement = newJudgement(this.#options.supportedPpt ?? DEFAULT_SUPPORTED_PPT, pool);
    const candidates: Candidate[] = await Promise.all(
      [...opened.passports].map(async ([passport, where]) => ({
        passport,
        blobIds: where.blobIds,
        kids: where.kids,
        ...(await this.#check(passport, opened.to, calling, at, pool, judgement)),
      })),
    );
    // Replay (step 5): claim the first passing PASSporT no other call holds; only that one is used up.
    // Passing candidates after it are neither claimed nor looked up (they stay `ok`).
    let verified: Candidate | undefined;
    const window = this.#options.freshnessSeconds ?? DEFAULT_FRESHNESS_SECONDS;
    const callId = call.callId ?? crypto.randomUUID();
    for (const [i, c] of candidates.entries()) {
      if (!c.ok || verified) continue;
      if (this.#options.allowForking) {
        verified = c;
        continue;
      }
      // Kept until no call could still find it fresh: a window past the latest of iat, call and now.
      const expiresAt = Math.max(c.iat ?? now, at, now) + window + 1;
      let holder = await this.#replay.claim(await replayKey(c.passport), callId, expiresAt, now);
      // A diversion chain claims every PASSporT it holds, so neither the chain nor its original
      // verifies a second call here. The earlier links are keyed to the called number: the same
      // original may rightly verify at the number it was first sent to, under a store shared with it.
      // A PASSporT verified directly claims that key for the called number too, so it cannot verify
      // another call here as the original of a chain (nor the other way round).
      const earlier = c.diversion
        ? c.diversion.links.slice(1)
        : [{ passport: c.passport, iat: c.iat ?? now }];
      for (const link of earlier) {
        if (holder !== callId) break;
        const key = await replayKey(`${opened.to}:${link.passport}`);
        holder = await this.#replay.claim(
          `link:${key}`,
          callId,
          Math.max(expiresAt, link.iat + window + 1),
          now,
        );
      }
      if (holder === callId) verified = c;
      else {
        candidates[i] = {
          ...c,
          ok: false,
          failure: { step: 5, code: "REPLAYED", message: "The PASSporT already verified another call" },
        };
      }
    }
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
      ...(verified?.origid === undefined ? {} : { origid: verified.origid }),
      ...(verified?.diversion ? { diversion: verified.diversion } : {}),
      at,
      timings: { ...opened.timings, verify, total: opened.timings.retrieve + opened.timings.open + verify },
      ...(opened.sources ? { sources: opened.sources } : {}),
    };
  }

  /**
   * The whole of §8.2 for one ringing call: retrieve, open, steps 2-6, verdict.
   * @example
   * const { verdict, candidates } = await vs.verifyCall({ to: "+2 222 555 2222", calling: "+1 111 555 1111" });
   */
  async verifyCall(
    input: {
      to: string;
      calling: string;
      blobs?: readonly ListedBlob[];
    } & CallOptions,
  ): Promise<CallVerification> {
    const { at, callId } = input;
    return this.judge(await this.open(input.to, input.blobs), input.calling, {
      ...(at === undefined ? {} : { at }),
      ...(callId === undefined ? {} : { callId }),
    });
  }

  /**
   * Bulk retrieval (§5.5, a call centre): one retrieval for the number, a verdict per calling number
   * (each a separate call: one PASSporT verifies one of them).
   * @example
   * const verdicts = await vs.verifyCalls("+2 222 555 2222", ["+1 111 555 1111", "+1 111 555 1112"]);
   */
  async verifyCalls(to: string, callingNumbers: readonly string[]): Promise<CallVerification[]> {
    const opened = await this.open(to);
    return Promise.all(callingNumbers.map((c) => this.judge(opened, c)));
  }

  /**
   * Feedback (RFC 8816 §7.5, docs/tokens.md "Feedback"): reports to the CPS every blob of a verdict's
   * candidates that failed in a way the CPS can confirm (`REPORTABLE_FAILURES`: bogus whatever the call),
   * so it makes the token that paid for it worthless. Each report discloses that one blob's KEM shared
   * secret, nothing of the callee's keys; it carries no credential and goes through the relay when this
   * VS uses one. `blobs`: the list retrieved (else each blob is fetched again by id, while it lives).
   * @example
   * const result = await vs.verifyCall({ to, calling });
   * if (result.verdict === "failed") console.log(await vs.report(result));
   */
  async report(
    verification: Pick<CallVerification, "to" | "candidates">,
    options: { blobs?: readonly ListedBlob[]; force?: boolean } = {},
  ): Promise<ReportOutcome[]> {
    const bases = await this.#cpsBases(verification.to);
    return reportCandidates({
      to: verification.to,
      candidates: verification.candidates,
      keys: this.#options.keys,
      clients: bases.map((b) => this.#client(b)),
      ...(options.blobs ? { blobs: options.blobs } : {}),
      ...(options.force ? { force: true } : {}),
    });
  }
}
