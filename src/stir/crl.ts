/**
 * Revocation by CRL (RFC 5280 §5, §6.3) for STIR certificate paths (RFC 8226 §10; ATIS-1000080 puts
 * a CRL distribution point in SHAKEN certificates). A `RevocationChecker` (src/stir/revocation.ts)
 * that `CertificateValidator` calls on every validated path and every cache hit.
 *
 * For each certificate of the path except the trust anchor: read its CRL distribution points
 * (§4.2.1.13). None: the certificate is not checked (its CA publishes no revocation for it). Else
 * fetch the CRL under the x5u URL rules (src/stir/x5u.ts `checkX5uUrl` and `fetchBounded`: https on
 * 443, a public DNS name, the operator's allow-list, no redirects, size limit, timeout), check it was
 * issued and signed by the certificate's issuer (the next certificate of the path: name, key,
 * cRLSign), that it is complete (no unknown critical extension, no delta CRL, no partition that
 * leaves the certificate out), and current (thisUpdate <= now <= nextUpdate); then look the serial
 * up. Listed: `CERT_REVOKED`. A distribution point named but no usable CRL from it (refused URL,
 * fetch failure, bad signature, stale, malformed): `CERT_REVOCATION_UNKNOWN`; it fails closed, since
 * a stolen credential's holder could otherwise block the CRL to keep using it.
 *
 * Each CRL is cached by URL until its nextUpdate (at most `maxCacheSeconds`, bounded in entries), and
 * fetched at most once at a time; failures are not cached. `fetch` is injected, as for x5u.
 */
import "reflect-metadata";
import { AsnConvert } from "@peculiar/asn1-schema";
import { IssuingDistributionPoint } from "@peculiar/asn1-x509";
import {
  BasicConstraintsExtension,
  CRLDistributionPointsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  type X509Certificate,
  X509Crl,
  X509CrlReason,
} from "@peculiar/x509";
import { CpsError } from "../errors.js";
import { CertificateValidator } from "./cert-validate.js";
import type { SpcNumberBlocks } from "./number-blocks.js";
import type { RevocationChecker } from "./revocation.js";
import { SingleFlight } from "./single-flight.js";
import {
  BoundedFetchError,
  checkX5uUrl,
  fetchBounded,
  type X5uFailureReason,
  type X5uUrlPolicy,
} from "./x5u.js";

/** Why a CRL could not be used, for the operator's log (never shown to clients). */
export type CrlFailureReason =
  | X5uFailureReason
  | "url" // no distribution point URL passes the URL policy
  | "malformed" // not a DER CRL
  | "issuer" // names another issuer, or the issuer may not sign CRLs
  | "signature" // does not verify with the issuer's key
  | "unsupported" // unknown critical extension, delta CRL, indirect or partitioned CRL
  | "stale"; // thisUpdate in the future, nextUpdate absent or past

export interface CrlCheckerOptions {
  /** The fetch to use (default: global fetch). */
  readonly fetch?: typeof fetch;
  /** The URL policy of x5u (allow-list, development loopback switch) applied to CRL URLs. */
  readonly policy?: X5uUrlPolicy;
  /** Largest CRL accepted, bytes (default 64 KiB, as an x5u body: about 1,500 entries). */
  readonly maxBytes?: number;
  /** Timeout for the whole fetch, milliseconds (default 5000). */
  readonly timeoutMs?: number;
  /** Cached CRLs at most (default 64), least recently used evicted. */
  readonly cacheEntries?: number;
  /** A CRL is reused until its nextUpdate, but at most this long after its fetch, seconds (default 86400). */
  readonly maxCacheSeconds?: number;
  /** Tolerance for a thisUpdate ahead of our clock, seconds (default 300). */
  readonly clockSkewSeconds?: number;
  /** Called once per CRL that could not be used, with a reason code (and the upstream status). */
  readonly onFailure?: (reason: CrlFailureReason, status?: number) => void;
  /** Clock for cache ages, milliseconds (default Date.now); CRL times are checked at `check`'s `now`. */
  readonly now?: () => number;
}

/** URLs tried per certificate at most: the CA names them, but a path should not fan out. */
const MAX_URLS_PER_CERTIFICATE = 4;

// CRL extensions this checker understands (RFC 5280 §5.2); any other critical one makes a CRL unusable.
const AUTHORITY_KEY_ID = "2.5.29.35";
const CRL_NUMBER = "2.5.29.20";
const ISSUING_DISTRIBUTION_POINT = "2.5.29.28";
const DELTA_CRL_INDICATOR = "2.5.29.27";
const FRESHEST_CRL = "2.5.29.46";
const KNOWN_CRL_EXTENSIONS = new Set([
  AUTHORITY_KEY_ID,
  CRL_NUMBER,
  ISSUING_DISTRIBUTION_POINT,
  FRESHEST_CRL,
]);
// CRL entry extensions understood (§5.3): reason code, invalidity date. certificateIssuer (2.5.29.29)
// appears only in indirect CRLs, which are refused.
const KNOWN_ENTRY_EXTENSIONS = new Set(["2.5.29.21", "2.5.29.24"]);

class Unusable extends Error {
  constructor(
    readonly reason: CrlFailureReason,
    readonly status?: number,
  ) {
    super(reason);
  }
}

interface CachedCrl {
  readonly crl: X509Crl;
  /** thisUpdate and nextUpdate (NaN when absent), ms, read once. */
  readonly thisUpdate: number;
  readonly nextUpdate: number;
  /** The fetch time plus `maxCacheSeconds`, ms: the cache bound whatever nextUpdate says. */
  readonly keepUntil: number;
  /** Issuer keys (hex SPKI + subject DER) this CRL's signature and name were checked against. */
  readonly verifiedFor: Set<string>;
  /** Per certificate already looked up in this CRL: revoked or not (its scope held). */
  readonly answers: WeakMap<X509Certificate, boolean>;
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

// An issuer's identity for `verifiedFor`, computed once per certificate object (a validator's cache
// hits hand back the same objects, so the hot path does not re-encode names).
const issuerKeys = new WeakMap<X509Certificate, string>();

function issuerKey(issuer: X509Certificate): string {
  let key = issuerKeys.get(issuer);
  if (key === undefined) {
    key = `${hex(issuer.publicKey.rawData)}/${hex(issuer.subjectName.toArrayBuffer())}`;
    issuerKeys.set(issuer, key);
  }
  return key;
}

/** Whether a URI names `href` (as the URL parser normalises both). */
function sameUrl(uri: string | undefined, href: string): boolean {
  if (uri === undefined) return false;
  try {
    return new URL(uri).href === href;
  } catch {
    return false;
  }
}

/** The http(s) URLs of the distribution points a complete CRL for `cert` may come from. */
function distributionUrls(ext: CRLDistributionPointsExtension): string[] {
  const urls: string[] = [];
  for (const dp of ext.distributionPoints) {
    // A DP limited to some reasons (partitioned) or with another CRL issuer (indirect) cannot answer
    // for every reason with the issuer's own key: not used.
    if (dp.reasons !== undefined || dp.cRLIssuer !== undefined) continue;
    for (const name of dp.distributionPoint?.fullName ?? []) {
      const uri = name.uniformResourceIdentifier;
      if (uri !== undefined && /^https?:/i.test(uri)) urls.push(uri);
    }
  }
  return urls.slice(0, MAX_URLS_PER_CERTIFICATE);
}

/**
 * Fetches, verifies and caches CRLs; checks validated paths against them.
 *
 * @example
 * const crl = new CrlChecker({ policy: { allowedHosts: ["*.sti-ca.example"] } });
 * const validator = new CertificateValidator({ anchors, revocation: crl });
 */
export class CrlChecker implements RevocationChecker {
  readonly #fetch: typeof fetch;
  readonly #policy: X5uUrlPolicy;
  readonly #maxBytes: number;
  readonly #timeoutMs: number;
  readonly #entries: number;
  readonly #maxCacheMs: number;
  readonly #skewMs: number;
  readonly #onFailure: NonNullable<CrlCheckerOptions["onFailure"]>;
  readonly #clock: () => number;
  readonly #cache = new Map<string, CachedCrl>();
  readonly #inflight = new SingleFlight<CachedCrl>();
  #fetches = 0;

  constructor(options: CrlCheckerOptions = {}) {
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#policy = options.policy ?? {};
    this.#maxBytes = options.maxBytes ?? 65_536;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#entries = Math.max(1, options.cacheEntries ?? 64);
    this.#maxCacheMs = (options.maxCacheSeconds ?? 86_400) * 1000;
    this.#skewMs = (options.clockSkewSeconds ?? 300) * 1000;
    this.#onFailure = options.onFailure ?? (() => undefined);
    this.#clock = options.now ?? Date.now;
  }

  /** Number of cached CRLs. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /** CRL fetches started so far (for tests and metrics). */
  get fetchCount(): number {
    return this.#fetches;
  }

  async check(path: readonly X509Certificate[], now: Date): Promise<void> {
    // The anchor (last) is trusted by configuration; every other certificate is checked against a CRL
    // of the certificate that issued it, the next one along the path.
    for (let i = 0; i < path.length - 1; i++) {
      const cert = path[i] as X509Certificate;
      const urls = this.#urls(cert);
      if (urls === null) continue; // no distribution point: nothing to check (docs: revocation)
      await this.#checkOne(cert, path[i + 1] as X509Certificate, urls, now);
    }
  }

  // Per certificate object: its distribution point URLs that pass this checker's URL policy (null: it
  // names none). A validator's cache hits hand back the same objects, so this is parsed once.
  readonly #urlMemo = new WeakMap<X509Certificate, string[] | null>();

  #urls(cert: X509Certificate): string[] | null {
    const memo = this.#urlMemo.get(cert);
    if (memo !== undefined) return memo;
    let ext: CRLDistributionPointsExtension | null;
    try {
      ext = cert.getExtension(CRLDistributionPointsExtension);
    } catch (cause) {
      throw new CpsError("CERT_MALFORMED", "The certificate cannot be parsed", { cause });
    }
    const urls: string[] | null = ext === null ? null : [];
    for (const url of ext === null ? [] : distributionUrls(ext)) {
      try {
        urls?.push(checkX5uUrl(url, this.#policy).href);
      } catch {
        // refused by the URL policy; another distribution point may do
      }
    }
    this.#urlMemo.set(cert, urls);
    return urls;
  }

  async #checkOne(cert: X509Certificate, issuer: X509Certificate, urls: string[], now: Date): Promise<void> {
    // Made only on failure: an Error captures a stack, too dear for every check on the hot path.
    let last: Unusable | undefined;
    for (const href of urls) {
      try {
        if (await this.#revoked(href, cert, issuer, now)) {
          throw new CpsError("CERT_REVOKED", "A certificate has been revoked");
        }
        return;
      } catch (err) {
        if (!(err instanceof Unusable)) throw err;
        last = err;
      }
    }
    this.#onFailure(last?.reason ?? "url", last?.status);
    throw new CpsError("CERT_REVOCATION_UNKNOWN", "The certificate's revocation status cannot be checked");
  }

  /**
   * Whether the CRL at `url` (verified for `issuer`, covering `cert`, current at `now`) lists `cert`.
   * Throws `Unusable`.
   */
  async #revoked(url: string, cert: X509Certificate, issuer: X509Certificate, now: Date): Promise<boolean> {
    const t = now.getTime();
    let entry = this.#fresh(url, t);
    if (entry === undefined) entry = await this.#load(url);
    const { crl } = entry;
    const key = issuerKey(issuer);
    if (!entry.verifiedFor.has(key)) {
      await verifyIssuer(crl, issuer);
      entry.verifiedFor.add(key);
    }
    // RFC 5280 §5.1.2.4, §5.1.2.5: issued (give or take the skew), and its next update not passed; a
    // CRL without nextUpdate (NaN) never is current.
    if (entry.thisUpdate > t + this.#skewMs || !(t <= entry.nextUpdate)) throw new Unusable("stale");
    let revoked = entry.answers.get(cert);
    if (revoked === undefined) {
      checkScope(crl, cert, url);
      const listed = crl.findRevoked(cert);
      // removeFromCRL (RFC 5280 §5.3.1) appears in delta CRLs only, which are refused; listed = revoked.
      revoked = listed !== null && listed.reason !== X509CrlReason.removeFromCRL;
      entry.answers.set(cert, revoked);
    }
    return revoked;
  }

  /** A cached CRL still inside its nextUpdate (at `t`) and the cache bound, else undefined. */
  #fresh(url: string, t: number): CachedCrl | undefined {
    const hit = this.#cache.get(url);
    if (hit === undefined) return undefined;
    this.#cache.delete(url);
    if (!(t <= hit.nextUpdate) || this.#clock() > hit.keepUntil) return undefined;
    this.#cache.set(url, hit); // recency
    return hit;
  }

  #load(url: string): Promise<CachedCrl> {
    return this.#inflight.run(url, () => this.#fetchCrl(url));
  }

  async #fetchCrl(url: string): Promise<CachedCrl> {
    this.#fetches++;
    let body: Uint8Array;
    try {
      ({ body } = await fetchBounded(this.#fetch, url, {
        maxBytes: this.#maxBytes,
        timeoutMs: this.#timeoutMs,
        accept: "application/pkix-crl",
      }));
    } catch (err) {
      if (err instanceof BoundedFetchError) throw new Unusable(err.reason, err.status);
      throw new Unusable("network");
    }
    let crl: X509Crl;
    try {
      // DER (RFC 5280 §4.2.1.13: a DER encoded CRL). X509Crl would also take PEM, hex or base64 text,
      // so a body that does not start as a SEQUENCE is refused before it parses.
      if (body[0] !== 0x30) throw new Unusable("malformed");
      crl = new X509Crl(body.slice().buffer);
      checkExtensions(crl);
    } catch (err) {
      if (err instanceof Unusable) throw err;
      throw new Unusable("malformed");
    }
    // Cached as fetched: `#fresh` drops it once asked past its nextUpdate, so a stale CRL is fetched
    // again on the next check (the CA may have published since) and refused by time meanwhile.
    const entry: CachedCrl = {
      crl,
      thisUpdate: crl.thisUpdate.getTime(),
      nextUpdate: crl.nextUpdate?.getTime() ?? Number.NaN,
      keepUntil: this.#clock() + this.#maxCacheMs,
      verifiedFor: new Set(),
      answers: new WeakMap(),
    };
    this.#cache.set(url, entry);
    while (this.#cache.size > this.#entries) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
    return entry;
  }
}

/** RFC 5280 §5.2, §5.3: unknown critical extensions and delta CRLs make a CRL unusable. */
function checkExtensions(crl: X509Crl): void {
  for (const ext of crl.extensions) {
    if (ext.type === DELTA_CRL_INDICATOR) throw new Unusable("unsupported");
    if (ext.critical && !KNOWN_CRL_EXTENSIONS.has(ext.type)) throw new Unusable("unsupported");
  }
  for (const entry of crl.entries) {
    for (const ext of entry.extensions) {
      if (ext.critical && !KNOWN_ENTRY_EXTENSIONS.has(ext.type)) throw new Unusable("unsupported");
    }
  }
}

/** RFC 5280 §6.3.3 (f), (g): the CRL names the issuer, which may sign CRLs, and its signature holds. */
async function verifyIssuer(crl: X509Crl, issuer: X509Certificate): Promise<void> {
  const same = (a: ArrayBuffer, b: ArrayBuffer) => hex(a) === hex(b);
  if (!same(crl.issuerName.toArrayBuffer(), issuer.subjectName.toArrayBuffer())) {
    throw new Unusable("issuer");
  }
  const ku = issuer.getExtension(KeyUsagesExtension);
  if (ku !== null && (ku.usages & KeyUsageFlags.cRLSign) === 0) throw new Unusable("issuer");
  let ok: boolean;
  try {
    // The issuer's PublicKey, so the CRL's own signature algorithm is used (not the certificate's).
    ok = await crl.verify({ publicKey: issuer.publicKey });
  } catch {
    ok = false;
  }
  if (!ok) throw new Unusable("signature");
}

/**
 * RFC 5280 §5.2.5, §6.3.3 (b): an issuing distribution point must not leave `cert` out (only user or
 * only CA certificates, some reasons, indirect, attribute certificates) and, when it names its
 * distribution point, must name the URL it was fetched from.
 */
function checkScope(crl: X509Crl, cert: X509Certificate, url: string): void {
  const ext = crl.extensions.find((e) => e.type === ISSUING_DISTRIBUTION_POINT);
  if (ext === undefined) return;
  let idp: IssuingDistributionPoint;
  try {
    idp = AsnConvert.parse(ext.value, IssuingDistributionPoint);
  } catch {
    throw new Unusable("malformed");
  }
  if (idp.indirectCRL || idp.onlyContainsAttributeCerts || idp.onlySomeReasons !== undefined) {
    throw new Unusable("unsupported");
  }
  const ca = cert.getExtension(BasicConstraintsExtension)?.ca === true;
  if ((idp.onlyContainsUserCerts && ca) || (idp.onlyContainsCACerts && !ca))
    throw new Unusable("unsupported");
  const names = idp.distributionPoint?.fullName;
  if (names !== undefined && !names.some((n) => sameUrl(n.uniformResourceIdentifier, url))) {
    throw new Unusable("unsupported");
  }
}

/**
 * A validator for `anchors` that checks CRLs: the client library's default (the AS's key-record check,
 * the VS's PASSporT check), fetching with `fetch` under the x5u URL `policy`, as the CPS does.
 */
export function crlCheckingValidator(
  anchors: readonly X509Certificate[],
  options: { fetch?: typeof fetch; policy?: X5uUrlPolicy; spcNumberBlocks?: SpcNumberBlocks } = {},
): CertificateValidator {
  const revocation = new CrlChecker({
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    ...(options.policy === undefined ? {} : { policy: options.policy }),
  });
  return new CertificateValidator({
    anchors,
    revocation,
    ...(options.spcNumberBlocks === undefined ? {} : { spcNumberBlocks: options.spcNumberBlocks }),
  });
}
