/**
 * The AS's check of a key directory answer (RFC 8816 §11: keys "linked to the STIR credential" of the
 * number). Each JWK the directory serves may carry `record`, a signed key record (a JWS made with the
 * credential of the number's holder, docs/key-directory.md "Signed key records"). Only the record's
 * payload is trusted (its jwk, blocks and window); the served JWK's own members are used only to find
 * the record. So a dishonest directory can withhold keys, never substitute one: a key it made up has
 * no record that verifies. Entries without a record are "unsigned" and are skipped unless the caller
 * opted in (`allowUnsignedKeys`, the directory is then trusted with the keys). No Node-only imports.
 */
import type { X509Certificate } from "@peculiar/x509";
import { StirOobError } from "../errors.js";
import { decodeBase64url } from "../stir/base64url.js";
import type { CertificateChain } from "../stir/cert-parse.js";
import type { CertificateValidator, ValidatedCertificate } from "../stir/cert-validate.js";
import { crlCheckingValidator } from "../stir/crl.js";
import { jwkThumbprint } from "../stir/key-records.js";
import { blockContainsTn, parseBlock, type SpcNumberBlocks } from "../stir/number-blocks.js";
import { KEY_RECORD_SKEW_SECONDS, verifyKeyRecord } from "../stir/signed-key-record.js";
import type { CanonicalTn } from "../stir/tn.js";
import { type X5uUrlPolicy, x5uChainResolver } from "../stir/x5u.js";
import type { FetchLike } from "./cps-client.js";
import { StirClientError } from "./errors.js";

/** A key directory answer as fetched: every JWK of every page, before any check. */
export interface KeyDirectoryAnswer {
  /** The JWKs served, as they came (not trusted). */
  readonly entries: readonly unknown[];
  /** True for `GET /keys/{tn}` (every entry is meant for the number), false for a prefix lookup. */
  readonly exact: boolean;
  /** When it was fetched (the discovery clock, ms): tells a cached answer from a fresh one. */
  readonly fetchedAt?: number;
}

/** One public encryption key of a destination, from a record that passed the check. */
export interface DestinationKey {
  /** RFC 7638 thumbprint of the key, computed here (never the directory's `kid`). */
  readonly kid: string;
  /** Raw 32-byte X25519 public key. */
  readonly publicKey: Uint8Array;
  readonly label?: string;
  /** The record's blocks (absent for an unsigned key accepted with `allowUnsignedKeys`). */
  readonly blocks?: readonly string[];
  /** End of the record's window, seconds since the epoch (absent for an unsigned key). */
  readonly exp?: number;
  /** Subject of the certificate that signed the record (absent for an unsigned key). */
  readonly signer?: string;
}

/** A served key the AS did not seal to, and why (`code` is stable, `kid` is the directory's claim). */
export interface SkippedKey {
  readonly kid?: string;
  /** `KEY_RECORD_UNSIGNED`, `KEY_RECORD_INVALID`, `KEY_RECORD_EXPIRED`, `CERT_*`, `TOO_MANY_KEYS`, ... */
  readonly code: string;
  readonly message: string;
}

export interface KeyRecordCheckOptions {
  /** Trusted roots for the records' certificates (STI-PA list); or give a `validator`. */
  readonly trustAnchors?: readonly X509Certificate[];
  /**
   * A configured validator (its revocation checker, SPC map and cache are used as they are). Default:
   * one for `trustAnchors` that checks CRLs with `fetch` under `x5uPolicy`
   * (docs/passport-and-credentials.md "Revocation").
   */
  readonly validator?: CertificateValidator;
  /** Resolves a record's `x5u` to its chain; default an `X5uFetcher` held to `x5uPolicy`. */
  readonly resolveCertificate?: (x5u: string) => Promise<CertificateChain>;
  /** Policy of the default resolver, the same rules as the VS (docs/passport-and-credentials.md). */
  readonly x5uPolicy?: X5uUrlPolicy;
  /** Which numbers an SPC speaks for, for records signed under an SPC-scoped certificate. */
  readonly spcNumberBlocks?: SpcNumberBlocks;
  /**
   * Seal to entries that carry no signed record (old directories), trusting the directory with the
   * key. Default false: an unsigned entry is skipped with `KEY_RECORD_UNSIGNED`
   * (docs/threat-model.md says what turning this on costs).
   */
  readonly allowUnsignedKeys?: boolean;
  readonly fetch?: FetchLike;
}

/** Records checked per number and answer at most: a directory cannot make the AS verify without end. */
export const MAX_RECORDS_PER_NUMBER = 64;
/** Longest record text looked into before verification (the record format's own limit). */
const MAX_RECORD_CHARS = 16_384;
/** Failures that may pass on their own: not remembered for the cached answer. */
const TRANSIENT = new Set([
  "X5U_FETCH_FAILED",
  "CERT_REVOCATION_UNKNOWN",
  "UNAVAILABLE",
  // Judged at the first call's time; a record or certificate that was not valid yet may be soon.
  "KEY_RECORD_EXPIRED",
  "CERT_NOT_YET_VALID",
]);

type Outcome =
  | {
      readonly ok: true;
      readonly key: DestinationKey;
      readonly nbf: number;
      readonly exp: number;
      readonly validFrom: number;
      readonly validUntil: number;
      /** The signer's validated chain; absent for an unsigned key taken at the directory's word. */
      readonly certificate?: ValidatedCertificate;
    }
  | { readonly ok: false; readonly code: string; readonly message: string };

/** The blocks a record's payload claims, read WITHOUT verifying (only to decide whether to verify). */
function claimedBlocks(jws: string): string[] | undefined {
  if (jws.length > MAX_RECORD_CHARS) return undefined;
  const parts = jws.split(".");
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    const payload = JSON.parse(new TextDecoder().decode(decodeBase64url(parts[1]))) as { blocks?: unknown };
    return Array.isArray(payload.blocks) && payload.blocks.every((b) => typeof b === "string")
      ? (payload.blocks as string[])
      : undefined;
  } catch {
    return undefined;
  }
}

function blocksContain(blocks: readonly unknown[], tn: CanonicalTn): boolean {
  return blocks.some((b) => {
    try {
      return typeof b === "string" && blockContainsTn(parseBlock(b), tn);
    } catch {
      return false;
    }
  });
}

function directoryKid(entry: Record<string, unknown>): string | undefined {
  return typeof entry.kid === "string" && entry.kid.length <= 64 ? entry.kid : undefined;
}

/**
 * Checks key directory answers for one AS: which served keys may a call to `tn` be sealed to.
 *
 * @example
 * const check = new KeyRecordCheck({ trustAnchors: [root] });
 * const { keys, skipped } = await check.select(answer, canonicalTn("12025550101"), Date.now() / 1000);
 * // keys: only those whose signed record verifies and covers the number now
 */
export class KeyRecordCheck {
  readonly #validator: CertificateValidator;
  readonly #resolve: (x5u: string) => Promise<CertificateChain>;
  readonly #spc: SpcNumberBlocks | undefined;
  readonly allowUnsignedKeys: boolean;
  /** Outcomes per record, kept with the cached answer they came in (so they expire with it). */
  readonly #memo = new WeakMap<KeyDirectoryAnswer, Map<string, Promise<Outcome>>>();

  constructor(options: KeyRecordCheckOptions) {
    if (!options.validator && !options.trustAnchors?.length) {
      throw new TypeError("Checking key records needs trust anchors or a validator");
    }
    this.#validator =
      options.validator ??
      crlCheckingValidator(options.trustAnchors ?? [], {
        ...(options.fetch ? { fetch: options.fetch as typeof fetch } : {}),
        ...(options.x5uPolicy ? { policy: options.x5uPolicy } : {}),
        ...(options.spcNumberBlocks ? { spcNumberBlocks: options.spcNumberBlocks } : {}),
      });
    this.#resolve =
      options.resolveCertificate ??
      x5uChainResolver(options.fetch as typeof fetch | undefined, options.x5uPolicy);
    this.#spc = options.spcNumberBlocks;
    this.allowUnsignedKeys = options.allowUnsignedKeys ?? false;
  }

  /** Verifies one record (no number given: whether it covers the number is judged per call). */
  async #verify(jws: string, now: number): Promise<Outcome> {
    try {
      const r = await verifyKeyRecord(jws, {
        validator: this.#validator,
        resolveX5u: this.#resolve,
        now,
        ...(this.#spc ? { spcNumberBlocks: this.#spc } : {}),
      });
      const claims = r.claims;
      return {
        ok: true,
        key: {
          kid: r.kid,
          publicKey: r.publicKey,
          label: claims.label,
          blocks: [...claims.blocks],
          exp: claims.exp,
          signer: r.certificate.leaf.subject,
        },
        nbf: claims.nbf,
        exp: claims.exp,
        validFrom: r.certificate.validFrom.getTime() / 1000,
        validUntil: r.certificate.validUntil.getTime() / 1000,
        certificate: r.certificate,
      };
    } catch (err) {
      // A hostile record must never stop the call: whatever it makes the check throw is a skip reason.
      if (err instanceof StirOobError) return { ok: false, code: err.code, message: err.message };
      return { ok: false, code: "KEY_RECORD_INVALID", message: "The key record cannot be checked" };
    }
  }

  /** The memoised outcome for `jws` in `answer`, still judged against `now` (window, certificate). */
  async #outcome(answer: KeyDirectoryAnswer, jws: string, now: number): Promise<Outcome> {
    let memo = this.#memo.get(answer);
    if (memo === undefined) {
      memo = new Map();
      this.#memo.set(answer, memo);
    }
    let pending = memo.get(jws);
    if (pending === undefined) {
      pending = this.#verify(jws, now);
      memo.set(jws, pending);
    }
    const outcome = await pending;
    if (!outcome.ok) {
      if (TRANSIENT.has(outcome.code)) memo.delete(jws);
      return outcome;
    }
    // Remembered from an earlier call: the record's window and its certificate must hold NOW too.
    // The same window as verifyKeyRecord: nbf with its clock skew allowance, exp exclusive.
    if (now + KEY_RECORD_SKEW_SECONDS < outcome.nbf || now >= outcome.exp) {
      return { ok: false, code: "KEY_RECORD_EXPIRED", message: "The key record is not valid now" };
    }
    if (now < outcome.validFrom || now > outcome.validUntil) {
      return { ok: false, code: "CERT_EXPIRED", message: "The key record's certificate is not valid now" };
    }
    // A revocation published since the record was verified counts at once (CRLs are cached by the
    // checker until their nextUpdate, so this costs no fetch on a warm cache).
    if (outcome.certificate !== undefined) {
      try {
        await this.#validator.checkRevocation(outcome.certificate, new Date(now * 1000));
      } catch (err) {
        if (err instanceof StirOobError) return { ok: false, code: err.code, message: err.message };
        return { ok: false, code: "CERT_REVOCATION_UNKNOWN", message: "Revocation could not be checked" };
      }
    }
    return outcome;
  }

  /**
   * The keys of `answer` a call to `tn` may be sealed to at `now` (seconds), and the served entries
   * for `tn` that were skipped with their reason. In a prefix answer, entries that are about other
   * numbers of the block are neither used nor reported.
   */
  async select(
    answer: KeyDirectoryAnswer,
    tn: CanonicalTn,
    now: number,
  ): Promise<{ keys: DestinationKey[]; skipped: SkippedKey[] }> {
    const skipped: SkippedKey[] = [];
    const relevant: { entry: Record<string, unknown>; record?: string }[] = [];
    for (const raw of answer.entries) {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) continue;
      const entry = raw as Record<string, unknown>;
      if (typeof entry.record === "string") {
        // In a prefix answer the payload's own claim decides relevance (a record that lies about its
        // blocks fails to verify); in an exact one every entry is meant for `tn`, so each is judged.
        const claimed = answer.exact ? undefined : claimedBlocks(entry.record);
        if (claimed !== undefined && !blocksContain(claimed, tn)) continue;
        relevant.push({ entry, record: entry.record });
      } else if (entry.record !== undefined) {
        const kid = directoryKid(entry);
        skipped.push({
          ...(kid ? { kid } : {}),
          code: "KEY_RECORD_INVALID",
          message: "The key record is not a string",
        });
      } else {
        // Unsigned: only the directory's word says which number it is for.
        if (!answer.exact && !(typeof entry.block === "string" && blocksContain([entry.block], tn))) continue;
        relevant.push({ entry });
      }
    }
    const keys: DestinationKey[] = [];
    const seen = new Set<string>();
    const add = (key: DestinationKey) => {
      if (seen.has(key.kid)) return;
      seen.add(key.kid);
      keys.push(key);
    };
    const checked = relevant.slice(0, MAX_RECORDS_PER_NUMBER);
    for (const { entry } of relevant.slice(MAX_RECORDS_PER_NUMBER)) {
      const kid = directoryKid(entry);
      skipped.push({
        ...(kid ? { kid } : {}),
        code: "TOO_MANY_KEYS",
        message: "More keys were served for the number than are checked",
      });
    }
    const outcomes = await Promise.all(
      checked.map(async ({ entry, record }) =>
        record === undefined ? this.#unsigned(entry) : this.#outcome(answer, record, now),
      ),
    );
    outcomes.forEach((o, i) => {
      const entry = checked[i]?.entry ?? {};
      if (o === undefined) return;
      if (!o.ok) {
        const kid = directoryKid(entry);
        skipped.push({ ...(kid ? { kid } : {}), code: o.code, message: o.message });
        return;
      }
      if (o.key.blocks !== undefined && !blocksContain(o.key.blocks, tn)) {
        const kid = directoryKid(entry);
        skipped.push({
          ...(kid ? { kid } : {}),
          code: "KEY_RECORD_NOT_FOR_TN",
          message: "The key record does not cover the called number",
        });
        return;
      }
      add(o.key);
    });
    return { keys, skipped };
  }

  /** An entry without a record: skipped, or (opted in) taken at the directory's word. */
  async #unsigned(entry: Record<string, unknown>): Promise<Outcome | undefined> {
    if (!this.allowUnsignedKeys) {
      return {
        ok: false,
        code: "KEY_RECORD_UNSIGNED",
        message: "The key has no signed record (allowUnsignedKeys is off)",
      };
    }
    const publicKey = unsignedKey(entry);
    if (publicKey === undefined) return undefined;
    const key: DestinationKey = {
      kid: await jwkThumbprint(publicKey),
      publicKey,
      ...(typeof entry.label === "string" ? { label: entry.label } : {}),
    };
    return {
      ok: true,
      key,
      nbf: 0,
      exp: Number.POSITIVE_INFINITY,
      validFrom: 0,
      validUntil: Number.POSITIVE_INFINITY,
    };
  }
}

/** The raw key of a served OKP/X25519 public JWK, or undefined when it is not one. */
export function unsignedKey(jwk: Record<string, unknown>): Uint8Array | undefined {
  if (jwk.kty !== "OKP" || jwk.crv !== "X25519" || typeof jwk.x !== "string" || jwk.d !== undefined) {
    return undefined;
  }
  if (jwk.use !== undefined && jwk.use !== "enc") return undefined;
  try {
    const raw = decodeBase64url(jwk.x);
    return raw.length === 32 ? raw : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Refuses to seal when no served key may be used: `NO_VALID_KEYS` (with `details.skipped`) when keys
 * were served and none passed the record check, since sealing to any of them could hand the PASSporT
 * to whoever made it up (a dishonest directory); `NO_KEYS` when none was served at all.
 */
export function requireUsableKeys(keys: readonly DestinationKey[], skipped: readonly SkippedKey[]): void {
  if (keys.length > 0) return;
  if (skipped.length > 0) {
    throw new StirClientError(
      "NO_VALID_KEYS",
      "No key served for the called number passed the record check",
      {
        details: { skipped },
      },
    );
  }
  throw new StirClientError("NO_KEYS", "No encryption key is registered for the called number");
}
