/**
 * Feedback on bogus PASSporTs (RFC 8816 §7.5: "a CPS could use feedback from verification services
 * ... to make a token that paid for a bogus PASSporT worthless"). Pure protocol: the store's tag
 * header, the report body, and the CPS's judgment of a reported PASSporT. docs/tokens.md "Feedback".
 *
 * The link: after sealing, the AS derives `tag = HPKE Export(ctx, "stir-oob feedback tag v1" ||
 * SHA-256(enc || ct), 32)` (envelope.ts `feedbackTagOf`) and sends it with the tokened store; the CPS
 * keeps tag -> token in the token's ledger shard. A VS that opened a bogus blob sends the blob and its
 * KEM shared secret; the CPS re-runs the key schedule from the secret (envelope.ts
 * `openWithSharedSecret`) and derives the tag of the blob it was given. The digest binds the tag to
 * those very bytes: whoever knows a blob's secret can seal other bytes under it, but they export
 * another tag. Only sender and recipient can derive a tag, so stored state still links
 * no blob to a token (docs/design.md invariant 3) until a report discloses that one link.
 */
import { CpsError } from "../errors.js";
import { decodeBase64url, encodeBase64url } from "./base64url.js";
import {
  decodeEnvelope,
  ENVELOPE_TEXT_LENGTH,
  FEEDBACK_TAG_LENGTH,
  SHARED_SECRET_LENGTH,
} from "./envelope.js";
import { parseJsonObject } from "./json-body.js";
import { DEFAULT_FRESHNESS_SECONDS, type PassportHeader } from "./passport.js";
import { checkCpsPassport } from "./passport-check.js";
import { type CanonicalTn, canonicalTn } from "./tn.js";
import type { TnAuthList } from "./tnauthlist.js";

/** Store header carrying the blob's feedback tag (base64url, 32 bytes), with `CPS-Token`. */
export const FEEDBACK_TAG_HEADER = "CPS-Feedback-Tag";
/** Largest `POST /feedback` body, bytes: the envelope text (1,430) and a little JSON around it. */
export const MAX_FEEDBACK_BODY_BYTES = 4096;

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

/** base64url text of a tag (43 characters). */
export function encodeFeedbackTag(tag: Uint8Array): string {
  if (tag.length !== FEEDBACK_TAG_LENGTH) throw new TypeError("A feedback tag has 32 bytes");
  return encodeBase64url(tag);
}

/** The canonical text of a `CPS-Feedback-Tag` header; 400 `FEEDBACK_TAG_MALFORMED` otherwise. */
export function parseFeedbackTag(header: string): string {
  const text = header.trim();
  if (!B64URL_32.test(text)) {
    throw new CpsError("FEEDBACK_TAG_MALFORMED", `${FEEDBACK_TAG_HEADER} is 32 bytes of base64url`);
  }
  try {
    // Canonical form only: re-encoding must give the same text (the last character's spare bits zero).
    if (encodeBase64url(decodeBase64url(text)) !== text) throw new Error("non-canonical");
  } catch (cause) {
    throw new CpsError("FEEDBACK_TAG_MALFORMED", `${FEEDBACK_TAG_HEADER} is 32 bytes of base64url`, {
      cause,
    });
  }
  return text;
}

/** A `POST /feedback` body after the shape checks. */
export interface FeedbackReport {
  /** The number the blob was stored under (canonical). */
  readonly tn: CanonicalTn;
  /** The envelope bytes. */
  readonly blob: Uint8Array;
  /** The blob's KEM shared secret (32 bytes). */
  readonly secret: Uint8Array;
}

function invalid(message: string, cause?: unknown): CpsError {
  return new CpsError("FEEDBACK_INVALID", message, cause === undefined ? {} : { cause });
}

/**
 * Parses `{ "tn": "<number>", "blob": "<envelope base64url>", "secret": "<base64url, 32 bytes>" }`:
 * 400 `INVALID_BODY` (not a JSON object), `FEEDBACK_INVALID` (a member missing or of the wrong shape),
 * `INVALID_TN`, `BLOB_ENCODING` / `BLOB_SIZE`.
 */
export function parseFeedbackBody(text: string): FeedbackReport {
  const body = parseJsonObject(text);
  const tn = Object.hasOwn(body, "tn") ? body.tn : undefined;
  const blob = Object.hasOwn(body, "blob") ? body.blob : undefined;
  const secret = Object.hasOwn(body, "secret") ? body.secret : undefined;
  if (typeof tn !== "string" || tn.length > 64) throw invalid("tn is not a telephone number string");
  if (typeof blob !== "string" || blob.length !== ENVELOPE_TEXT_LENGTH) {
    throw new CpsError("BLOB_SIZE", "blob is one sealed PASSporT in base64url");
  }
  if (typeof secret !== "string" || !B64URL_32.test(secret)) {
    throw invalid("secret is 32 bytes of base64url");
  }
  let secretBytes: Uint8Array;
  try {
    secretBytes = decodeBase64url(secret);
  } catch (cause) {
    throw invalid("secret is 32 bytes of base64url", cause);
  }
  if (secretBytes.length !== SHARED_SECRET_LENGTH) throw invalid("secret is 32 bytes of base64url");
  return { tn: canonicalTn(tn), blob: decodeEnvelope(blob), secret: secretBytes };
}

/** The body of a report (client side). */
export function feedbackBody(tn: CanonicalTn, blob: Uint8Array, secret: Uint8Array): string {
  return JSON.stringify({ tn, blob: encodeBase64url(blob), secret: encodeBase64url(secret) });
}

/** The signer of a reported PASSporT: its key and TNAuthList, the chain validated by the CPS. */
export interface ReportedSigner {
  readonly publicKey: CryptoKey;
  readonly tnAuthList: TnAuthList;
}

/** Why a reported PASSporT is bogus: the first check it fails. */
export type BogusReason =
  | "MALFORMED"
  | "DEST_MISMATCH"
  | "STALE"
  | "UNTRUSTED"
  | "NOT_AUTHORISED"
  | "SIGNATURE";

export type FeedbackJudgment = { bogus: true; reason: BogusReason } | { bogus: false };

export interface JudgeOptions {
  /** The number the blob was stored under. */
  readonly tn: CanonicalTn;
  /** When the blob was stored (seconds): freshness and certificate validity are judged then. */
  readonly storedAt: number;
  readonly freshnessSeconds?: number;
  /**
   * The signer for the header, its chain validated to the CPS's trust anchors at `storedAt`. Throws
   * the validator's `CERT_*` codes for a certificate that is not good, `X5U_FETCH_FAILED` when it could
   * not be had (then nothing is judged: a repository that is down says nothing about the PASSporT).
   */
  readonly resolveSigner: (header: PassportHeader, at: Date) => Promise<ReportedSigner>;
}

/**
 * Certificate failures that make a PASSporT bogus: the signer is not one the CPS's anchors vouch for.
 * A VS reports these (client/feedback.ts `REPORTABLE_FAILURES`) because the CPS confirms them.
 */
export const UNTRUSTED_CERT_CODES: ReadonlySet<string> = new Set([
  "CERT_MALFORMED",
  "CERT_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_CHAIN_INVALID",
  "CERT_NO_TNAUTHLIST",
  "CERT_REVOKED",
]);

/**
 * Judges a reported PASSporT as the CPS can, knowing the called number and the store time but not
 * the call (so not the calling number a VS compares `orig` with). Bogus when it is not a well-formed
 * full-form PASSporT with `ppt` absent or `shaken`, its `dest` does not name `tn` (RFC 8816 §7.4: a
 * PASSporT re-sealed to another callee), its `iat` was not fresh when it was stored, its signer's
 * chain does not validate to the CPS's trust anchors at the store time, a numbered certificate does
 * not cover `orig`, or the signature does not verify: the checks of the ATIS publish path
 * (atis-passports.ts, the same `checkCpsPassport`) and of the VS (§8.2 steps 2-6) that need no call.
 * Not bogus: it verifies.
 * Throws `FEEDBACK_UNDECIDED` when it cannot be judged (another `ppt`, a repository that cannot be
 * reached, revocation status unknown): nothing changes then.
 */
export async function judgeReportedPassport(
  passport: string,
  options: JudgeOptions,
): Promise<FeedbackJudgment> {
  const r = await checkCpsPassport(passport, {
    claims: ["dest", "fresh"],
    dest: options.tn,
    now: options.storedAt,
    freshnessSeconds: options.freshnessSeconds ?? DEFAULT_FRESHNESS_SECONDS,
    resolveSigner: (header) => options.resolveSigner(header, new Date(options.storedAt * 1000)),
  });
  if (r.ok) return { bogus: false };
  const err = r.error;
  switch (r.step) {
    case "shape":
      if (err instanceof CpsError && err.code === "PASSPORT_PPT_UNSUPPORTED") {
        throw new CpsError("FEEDBACK_UNDECIDED", "The CPS cannot judge PASSporTs of this ppt", {
          cause: err,
        });
      }
      return { bogus: true, reason: "MALFORMED" };
    case "dest":
    case "orig": // not among the checks asked for: the CPS knows the callee, not the caller
      return { bogus: true, reason: "DEST_MISMATCH" };
    case "fresh":
      return { bogus: true, reason: "STALE" };
    case "signer":
      if (err instanceof CpsError && UNTRUSTED_CERT_CODES.has(err.code)) {
        return { bogus: true, reason: "UNTRUSTED" };
      }
      throw new CpsError("FEEDBACK_UNDECIDED", "The signing certificate could not be judged", { cause: err });
    case "authority":
      return { bogus: true, reason: "NOT_AUTHORISED" };
    case "signature":
      return { bogus: true, reason: "SIGNATURE" };
  }
}
