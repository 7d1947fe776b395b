/**
 * Validating a STIR certificate chain (RFC 8226 §6, §8; RFC 5280 §6) to configured trust anchors,
 * with a bounded cache of validated chains keyed by chain fingerprint.
 *
 * Path validation (signatures, name chaining, CA flags) is pkijs' CertificateChainValidationEngine,
 * which wants the end-entity certificate LAST. Before it we check, for precise error codes: validity
 * times of every certificate, basicConstraints cA and keyCertSign on every issuer in the chain, and
 * digitalSignature on the leaf. `X509ChainBuilder` of @peculiar/x509 is deliberately not used: it
 * builds chains through non-CA certificates and up to non-anchors without complaint.
 *
 * After it, delegation scope (RFC 9060 §4) along the path pkijs built (not the order presented): every
 * certificate with a TNAuthList must lie within the nearest certificate above it that has one. A CA
 * without a TNAuthList inherits the scope above it, so it cannot widen it; only where nothing above has
 * one (an STI-CA: ATIS-1000080 puts no TNAuthList in roots and intermediates) is the scope open.
 *
 * Last, revocation (RFC 5280 §6.3): an optional `RevocationChecker` (src/stir/revocation.ts; the CRL
 * checker is src/stir/crl.ts) sees the built path, on a fresh validation and on every cache hit, so a
 * cached result never outlives a certificate's revocation.
 */
import "reflect-metadata";
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  type X509Certificate,
} from "@peculiar/x509";
import * as pkijs from "pkijs";
import { CpsError } from "../errors.js";
import {
  type CertificateChain,
  certificatePublicKey,
  certificateTnAuthList,
  parseCertificateChain,
} from "./cert-parse.js";
import {
  type NumberBlock,
  patternCoversBlock,
  rangeToBlocks,
  type SpcNumberBlocks,
} from "./number-blocks.js";
import type { RevocationChecker } from "./revocation.js";
import { type SpcRangeCheck, type TnAuthList, tnAuthListWithin } from "./tnauthlist.js";

/** A chain that passed validation: what a verifier needs, and nothing it would have to recompute. */
export interface ValidatedCertificate {
  readonly fingerprint: string;
  readonly leaf: X509Certificate;
  /** The leaf's ES256 verification key (WebCrypto). */
  readonly publicKey: CryptoKey;
  /** The leaf's TNAuthList; empty only when `requireTnAuthList` was false and it had none. */
  readonly tnAuthList: TnAuthList;
  /** The earliest notAfter / latest notBefore across the chain: the cache entry's life. */
  readonly validUntil: Date;
  readonly validFrom: Date;
  /** The validated path as built (leaf first, trust anchor last): what revocation is checked on. */
  readonly path: readonly X509Certificate[];
}

export interface CertificateValidatorOptions {
  /** Trust anchors (self-signed roots, for SHAKEN the STI-PA list). At least one. */
  readonly anchors: readonly X509Certificate[];
  /** Cached validated chains (default 256); least recently used evicted first. */
  readonly cacheSize?: number;
  /** How long a validation result is reused, seconds (default 3600): bounds the use of a revoked CA. */
  readonly cacheTtlSeconds?: number;
  /** Refuse leaves without a TNAuthList (default true, RFC 8226 §9 for STIR certificates). */
  readonly requireTnAuthList?: boolean;
  /**
   * Which numbers an SPC speaks for (the CPS's SPC_NUMBER_BLOCKS), so that a CA scoped by SPC may
   * delegate numbers. Without an entry for the SPC, numbers under an SPC-only CA are refused.
   */
  readonly spcNumberBlocks?: SpcNumberBlocks;
  /**
   * Revocation of the validated path (RFC 5280 §6.3), checked after path validation and again on
   * every cache hit. Absent: revocation is not checked.
   */
  readonly revocation?: RevocationChecker;
}

export interface ValidateOptions {
  readonly now?: Date;
  readonly requireTnAuthList?: boolean;
  readonly spcNumberBlocks?: SpcNumberBlocks;
  /** Revocation of the validated path, checked last (see `CertificateValidatorOptions.revocation`). */
  readonly revocation?: RevocationChecker;
}

function spcRangeCheck(map: SpcNumberBlocks | undefined): SpcRangeCheck | undefined {
  if (map === undefined || map.size === 0) return undefined;
  return (spc, start, count) => {
    const patterns = map.get(spc);
    if (patterns === undefined || patterns.length === 0) return false;
    let blocks: NumberBlock[];
    try {
      blocks = rangeToBlocks(start, count);
    } catch {
      return false; // too many blocks or not a range of numbers: not provably inside
    }
    return blocks.every((b) => patterns.some((p) => patternCoversBlock(p, b)));
  };
}

/**
 * RFC 9060 §4 along `path` (leaf first, anchor last, as pkijs built it): each TNAuthList lies within
 * the nearest one above it. Throws `CERT_CHAIN_INVALID`.
 */
function checkDelegationScope(path: readonly X509Certificate[], spc: SpcRangeCheck | undefined): void {
  let scope: TnAuthList | undefined;
  for (let i = path.length - 1; i >= 0; i--) {
    const cert = path[i];
    if (cert === undefined) continue;
    const list = certificateTnAuthList(cert);
    if (list === undefined) continue; // inherits `scope`
    if (scope !== undefined && !tnAuthListWithin(list, scope, spc)) {
      throw new CpsError("CERT_CHAIN_INVALID", "A certificate's TNAuthList exceeds its issuer's");
    }
    scope = list;
  }
}

function hasUsage(cert: X509Certificate, flag: KeyUsageFlags): boolean | undefined {
  const ku = cert.getExtension(KeyUsagesExtension);
  return ku === null ? undefined : (ku.usages & flag) === flag;
}

function checkTimes(cert: X509Certificate, now: Date): void {
  if (now < cert.notBefore) throw new CpsError("CERT_NOT_YET_VALID", "A certificate is not yet valid");
  if (now > cert.notAfter) throw new CpsError("CERT_EXPIRED", "A certificate has expired");
}

function toPkijs(cert: X509Certificate): pkijs.Certificate {
  try {
    return pkijs.Certificate.fromBER(cert.rawData);
  } catch (cause) {
    throw new CpsError("CERT_MALFORMED", "The certificate cannot be parsed", { cause });
  }
}

/** Validates a chain (leaf first) to the given anchors at `now`, without any cache. */
export async function validateCertificateChain(
  chain: CertificateChain,
  anchors: readonly X509Certificate[],
  options: ValidateOptions = {},
): Promise<ValidatedCertificate> {
  const now = options.now ?? new Date();
  const [leaf, ...issuers] = chain.certificates;
  if (leaf === undefined) throw new CpsError("CERT_MALFORMED", "The certificate chain is empty");
  if (anchors.length === 0) throw new CpsError("MISCONFIGURED", "No trust anchors are configured");
  for (const cert of chain.certificates) checkTimes(cert, now);
  // RFC 5280 §4.2.1.9 and §4.2.1.3: every issuing certificate is a CA allowed to sign certificates.
  for (const cert of issuers) {
    if (
      cert.getExtension(BasicConstraintsExtension)?.ca !== true ||
      hasUsage(cert, KeyUsageFlags.keyCertSign) === false
    ) {
      throw new CpsError("CERT_CHAIN_INVALID", "An intermediate certificate is not a CA");
    }
  }
  // RFC 8226 §8 / ATIS-1000080: the STIR end-entity key signs PASSporTs, so digitalSignature.
  if (hasUsage(leaf, KeyUsageFlags.digitalSignature) === false) {
    throw new CpsError("CERT_CHAIN_INVALID", "The certificate key may not sign");
  }
  const tnAuthList = certificateTnAuthList(leaf);
  if (tnAuthList === undefined && options.requireTnAuthList !== false) {
    throw new CpsError("CERT_NO_TNAUTHLIST", "The certificate has no TNAuthList");
  }

  // pkijs answers with its own objects; map them back to ours to read TNAuthLists along the path.
  const back = new Map<pkijs.Certificate, X509Certificate>();
  const convert = (cert: X509Certificate): pkijs.Certificate => {
    const p = toPkijs(cert);
    back.set(p, cert);
    return p;
  };
  const engine = new pkijs.CertificateChainValidationEngine({
    trustedCerts: anchors.map(convert),
    // End-entity LAST: pkijs takes the final element as the certificate to validate.
    certs: [...issuers.map(convert), convert(leaf)],
    checkDate: now,
  });
  let result: { result: boolean; resultCode?: number; certificatePath?: pkijs.Certificate[] };
  try {
    result = await engine.verify();
  } catch (cause) {
    throw new CpsError("CERT_CHAIN_INVALID", "The certificate chain does not validate", { cause });
  }
  if (!result.result) {
    // 60 and 97: no path to any anchor; 14 and 3-5: CA flags; 8: times (checked above already).
    const untrusted = result.resultCode === 60 || result.resultCode === 97 || result.resultCode === -1;
    throw untrusted
      ? new CpsError("CERT_UNTRUSTED", "The certificate does not chain to a trust anchor")
      : new CpsError("CERT_CHAIN_INVALID", "The certificate chain does not validate");
  }
  const path = (result.certificatePath ?? []).map((p) => back.get(p));
  if (path.length < 2 || path.some((c) => c === undefined)) {
    // Fail closed: without the built path the scope of each issuer cannot be checked.
    throw new CpsError("CERT_CHAIN_INVALID", "The certificate chain does not validate");
  }
  const built = path as X509Certificate[];
  checkDelegationScope(built, spcRangeCheck(options.spcNumberBlocks));
  // Last: revocation fetches (CRLs), so nothing that fails a local check makes the verifier fetch.
  await options.revocation?.check(built, now);
  const times = chain.certificates;
  return {
    fingerprint: chain.fingerprint,
    leaf,
    publicKey: await certificatePublicKey(leaf),
    tnAuthList: tnAuthList ?? [],
    validUntil: new Date(Math.min(...times.map((c) => c.notAfter.getTime()))),
    validFrom: new Date(Math.max(...times.map((c) => c.notBefore.getTime()))),
    path: built,
  };
}

/**
 * Validates chains to fixed anchors and remembers the result by chain fingerprint (bounded LRU).
 * A cached result is reused only inside every certificate's validity and the cache TTL.
 *
 * @example
 * const validator = new CertificateValidator({ anchors: [root] });
 * const { publicKey, tnAuthList } = await validator.validate(await parseCertificateChain(pem));
 */
export class CertificateValidator {
  readonly #anchors: readonly X509Certificate[];
  readonly #size: number;
  readonly #ttlMs: number;
  readonly #requireTnAuthList: boolean;
  readonly #spcNumberBlocks: SpcNumberBlocks | undefined;
  readonly #revocation: RevocationChecker | undefined;
  readonly #cache = new Map<string, { value: ValidatedCertificate; at: number }>();

  constructor(options: CertificateValidatorOptions) {
    if (options.anchors.length === 0) throw new CpsError("MISCONFIGURED", "No trust anchors are configured");
    this.#anchors = [...options.anchors];
    this.#size = Math.max(1, options.cacheSize ?? 256);
    this.#ttlMs = (options.cacheTtlSeconds ?? 3600) * 1000;
    this.#requireTnAuthList = options.requireTnAuthList ?? true;
    this.#spcNumberBlocks = options.spcNumberBlocks;
    this.#revocation = options.revocation;
  }

  /** Number of cached validated chains (for tests and metrics). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /**
   * Checks the revocation of a chain this validator validated earlier (its `path`) at `now`, for
   * callers that keep a validation result beyond one use (a memoised key record): no-op without a
   * revocation checker. Throws `CERT_REVOKED` / `CERT_REVOCATION_UNKNOWN`.
   */
  async checkRevocation(validated: ValidatedCertificate, now: Date = new Date()): Promise<void> {
    await this.#revocation?.check(validated.path, now);
  }

  /** Validates a parsed chain, or PEM text / DER list, at `now`; cached by fingerprint. */
  async validate(
    input: CertificateChain | string | readonly (Uint8Array | ArrayBuffer)[],
    now: Date = new Date(),
  ): Promise<ValidatedCertificate> {
    const chain =
      typeof input === "string" || Array.isArray(input)
        ? await parseCertificateChain(input as string | readonly Uint8Array[])
        : (input as CertificateChain);
    const hit = this.#cache.get(chain.fingerprint);
    const t = now.getTime();
    if (hit !== undefined) {
      const v = hit.value;
      if (
        t >= v.validFrom.getTime() &&
        t <= v.validUntil.getTime() &&
        t >= hit.at &&
        t - hit.at <= this.#ttlMs
      ) {
        // A cached chain must not outlive its revocation: the checker answers from its own CRL cache.
        // A revoked (or unknown) chain stays cached: it is refused again on every use until evicted.
        await this.#revocation?.check(v.path, now);
        // Refresh recency: Map iteration order is insertion order, so re-insert at the end.
        this.#cache.delete(chain.fingerprint);
        this.#cache.set(chain.fingerprint, hit);
        return v;
      }
      this.#cache.delete(chain.fingerprint);
    }
    const value = await validateCertificateChain(chain, this.#anchors, {
      now,
      requireTnAuthList: this.#requireTnAuthList,
      spcNumberBlocks: this.#spcNumberBlocks,
      ...(this.#revocation === undefined ? {} : { revocation: this.#revocation }),
    });
    this.#cache.set(chain.fingerprint, { value, at: t });
    while (this.#cache.size > this.#size) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
    return value;
  }
}
