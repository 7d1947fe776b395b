/**
 * The one error type of the project, shared by the CPS, the protocol code and the client library.
 *
 * Every failure that can be caused by input carries a stable machine `code` from the union below and
 * the HTTP status the CPS answers with (RFC 9457 problem details). Messages are short and never carry
 * telephone numbers, blobs or tokens (docs/design.md invariant 6): the detail a test needs goes in `code`.
 */

/** Codes for malformed or refused requests (4xx at the CPS). */
export type CpsErrorCode =
  // Telephone numbers and paths
  | "INVALID_TN"
  | "INVALID_ID"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  // Request bodies
  | "UNSUPPORTED_MEDIA_TYPE"
  | "BODY_TOO_LARGE"
  | "INVALID_BODY"
  // Sealed PASSporTs (envelope)
  | "BLOB_ENCODING"
  | "BLOB_SIZE"
  | "PASSPORT_TOO_LARGE"
  | "ENVELOPE_OPEN_FAILED"
  | "INVALID_KEY"
  // Storage limits
  | "QUEUE_FULL"
  // PASSporTs, SIP Identity headers, certificates, credential tokens (RFC 8225, 8224, 8226)
  | "PASSPORT_MALFORMED"
  | "PASSPORT_ALG"
  | "PASSPORT_SIGNATURE"
  | "PASSPORT_STALE"
  | "PASSPORT_PPT_UNSUPPORTED"
  | "PASSPORT_CLAIMS"
  | "IDENTITY_HEADER_MALFORMED"
  | "CERT_MALFORMED"
  | "CERT_EXPIRED"
  | "CERT_NOT_YET_VALID"
  | "CERT_UNTRUSTED"
  | "CERT_CHAIN_INVALID"
  | "CERT_NO_TNAUTHLIST"
  | "CERT_NOT_AUTHORISED"
  // Revocation (RFC 5280 §5 CRLs): listed, or no usable CRL (fail closed)
  | "CERT_REVOKED"
  | "CERT_REVOCATION_UNKNOWN"
  | "X5U_FETCH_FAILED"
  | "AUTH_MISSING"
  | "AUTH_MALFORMED"
  | "AUTH_INVALID"
  | "AUTH_EXPIRED"
  | "AUTH_AUDIENCE"
  | "AUTH_REPLAYED"
  | "AUTH_ACTION"
  // Storage tokens (RFC 8816 §7.5, RFC 9474)
  | "TOKEN_MISSING"
  | "TOKEN_MALFORMED"
  | "TOKEN_INVALID"
  | "TOKEN_UNKNOWN_KEY"
  | "TOKEN_SPENT"
  | "TOKEN_RATE_LIMITED"
  | "ISSUANCE_QUOTA"
  | "BATCH_TOO_LARGE"
  // Feedback on bogus PASSporTs (RFC 8816 §7.5; part C of issue 17, docs/tokens.md "Feedback"): a
  // malformed CPS-Feedback-Tag or report, a report whose secret does not open the blob, no tokened
  // store with that tag, a reported PASSporT that verifies or cannot be judged, too many reports,
  // and a store paid with a token a report revoked
  | "FEEDBACK_TAG_MALFORMED"
  | "FEEDBACK_INVALID"
  | "FEEDBACK_SECRET_INVALID"
  | "FEEDBACK_UNKNOWN"
  | "FEEDBACK_NOT_BOGUS"
  | "FEEDBACK_UNDECIDED"
  | "FEEDBACK_RATE_LIMITED"
  | "TOKEN_REVOKED"
  // Key directory and discovery (RFC 8816 §10, §11)
  | "INVALID_PREFIX"
  | "INVALID_PAGE"
  | "NOT_OWNER"
  | "KEY_LIMIT"
  | "NOT_SERVED"
  // Signed key records (docs/key-directory.md "Signed key records"): malformed or badly signed,
  // outside its nbf..exp window, not for the number asked about, path not its first block, signed
  // by another holder than the token's, an unsigned registration body
  | "KEY_RECORD_INVALID"
  | "KEY_RECORD_EXPIRED"
  | "KEY_RECORD_NOT_FOR_TN"
  | "KEY_RECORD_MISMATCH"
  | "KEY_RECORD_SIGNER"
  | "KEY_RECORD_REQUIRED"
  // Push subscriptions and number blocks (RFC 8816 §5.5, §6.2)
  | "INVALID_BLOCK"
  | "BLOCK_TOO_LARGE"
  | "UPGRADE_REQUIRED"
  | "TOO_MANY_SUBSCRIBERS"
  // ...and a number subscription to a hot number (HOT_NUMBERS): its blobs are on several objects, so
  // one object's socket would miss some; its block's subscription sees them all
  | "NUMBER_SHARDED"
  // Oblivious HTTP gateway (RFC 9458): an unknown key or a request that does not decrypt (§5.3),
  // an encapsulation or inner Binary HTTP message that does not parse, an inner request refused
  | "OHTTP_KEY"
  | "OHTTP_MALFORMED"
  | "OHTTP_REFUSED"
  // ...and a sender that is not a relay on the gateway's list (OHTTP_RELAYS), refused before
  // decapsulation (RFC 9458 §6 leaves it to the deployment which relays a gateway serves)
  | "OHTTP_RELAY_UNKNOWN"
  // Oblivious HTTP relay (RFC 9458 §2): a client over the relay's rate limit, a gateway that did not
  // answer (a relay-side 502 about its peer, never caused by the client's input)
  | "RELAY_RATE_LIMITED"
  | "GATEWAY_UNREACHABLE"
  // The ATIS out-of-band APIs (ATIS-1000096, ATIS-1000105, VESPER; docs/atis-api.md): a path SPC that
  // is not one, a publish body's `passports` not 1..10 full-form JWSs, a published PASSporT for other
  // numbers than the path's, an access token `exp` beyond iat + 60, token claims not matching the path,
  // a `passports` digest not matching the body, a retrieval by an SPC without an agreement, a
  // `republish` from a credential of no configured peer, an Idempotency-Key malformed or reused for
  // another request, a credential over the ATIS rate limit
  | "INVALID_SPC"
  | "ATIS_PASSPORTS_INVALID"
  | "ATIS_PASSPORT_MISMATCH"
  | "ATIS_EXP_TOO_LONG"
  | "ATIS_CLAIM_MISMATCH"
  | "ATIS_DIGEST_MISMATCH"
  | "ATIS_NOT_PARTNER"
  | "ATIS_PEER_UNKNOWN"
  | "IDEMPOTENCY_KEY_INVALID"
  | "IDEMPOTENCY_KEY_MISMATCH"
  | "ATIS_RATE_LIMITED"
  // Diverted calls (RFC 8946, RFC 8816 §6.2; part A of issue 17, docs/diversion.md): a diversion
  // PASSporT that follows no PASSporT (its `div` is no `dest` of the one before it, `orig` changed,
  // or nothing opened that it follows), a chain longer than the verifier accepts, and a chain search
  // that needed more link checks than the verifier spends on one candidate (MAX_CHAIN_CHECKS)
  | "DIVERSION_UNLINKED"
  | "DIVERSION_TOO_LONG"
  | "DIVERSION_TOO_COMPLEX"
  // Server side, never caused by input
  | "UNAVAILABLE"
  | "INTERNAL"
  | "MISCONFIGURED";

/** Default HTTP status per code; a throw site may override it. */
export const ERROR_STATUS: Readonly<Record<CpsErrorCode, number>> = {
  INVALID_TN: 400,
  INVALID_ID: 400,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNSUPPORTED_MEDIA_TYPE: 415,
  BODY_TOO_LARGE: 413,
  INVALID_BODY: 400,
  BLOB_ENCODING: 400,
  BLOB_SIZE: 400,
  PASSPORT_TOO_LARGE: 400,
  ENVELOPE_OPEN_FAILED: 400,
  INVALID_KEY: 400,
  QUEUE_FULL: 429,
  PASSPORT_MALFORMED: 400,
  PASSPORT_ALG: 400,
  PASSPORT_SIGNATURE: 400,
  PASSPORT_STALE: 400,
  PASSPORT_PPT_UNSUPPORTED: 400,
  PASSPORT_CLAIMS: 400,
  IDENTITY_HEADER_MALFORMED: 400,
  CERT_MALFORMED: 400,
  CERT_EXPIRED: 403,
  CERT_NOT_YET_VALID: 403,
  CERT_UNTRUSTED: 403,
  CERT_CHAIN_INVALID: 403,
  CERT_NO_TNAUTHLIST: 403,
  CERT_NOT_AUTHORISED: 403,
  CERT_REVOKED: 403,
  CERT_REVOCATION_UNKNOWN: 403,
  X5U_FETCH_FAILED: 400,
  AUTH_MISSING: 401,
  AUTH_MALFORMED: 401,
  AUTH_INVALID: 401,
  AUTH_EXPIRED: 401,
  AUTH_AUDIENCE: 401,
  AUTH_REPLAYED: 401,
  AUTH_ACTION: 403,
  TOKEN_MISSING: 401,
  TOKEN_MALFORMED: 400,
  TOKEN_INVALID: 401,
  TOKEN_UNKNOWN_KEY: 401,
  TOKEN_SPENT: 429,
  TOKEN_RATE_LIMITED: 429,
  FEEDBACK_TAG_MALFORMED: 400,
  FEEDBACK_INVALID: 400,
  FEEDBACK_SECRET_INVALID: 403,
  FEEDBACK_UNKNOWN: 404,
  FEEDBACK_NOT_BOGUS: 422,
  FEEDBACK_UNDECIDED: 422,
  FEEDBACK_RATE_LIMITED: 429,
  TOKEN_REVOKED: 403,
  ISSUANCE_QUOTA: 429,
  BATCH_TOO_LARGE: 400,
  INVALID_PREFIX: 400,
  INVALID_PAGE: 400,
  NOT_OWNER: 403,
  KEY_LIMIT: 409,
  NOT_SERVED: 421,
  KEY_RECORD_INVALID: 400,
  KEY_RECORD_EXPIRED: 400,
  KEY_RECORD_NOT_FOR_TN: 400,
  KEY_RECORD_MISMATCH: 400,
  KEY_RECORD_SIGNER: 403,
  KEY_RECORD_REQUIRED: 400,
  INVALID_BLOCK: 400,
  BLOCK_TOO_LARGE: 400,
  UPGRADE_REQUIRED: 426,
  TOO_MANY_SUBSCRIBERS: 429,
  NUMBER_SHARDED: 409,
  OHTTP_KEY: 400,
  OHTTP_MALFORMED: 400,
  OHTTP_REFUSED: 403,
  OHTTP_RELAY_UNKNOWN: 403,
  RELAY_RATE_LIMITED: 429,
  GATEWAY_UNREACHABLE: 502,
  INVALID_SPC: 400,
  ATIS_PASSPORTS_INVALID: 400,
  ATIS_PASSPORT_MISMATCH: 400,
  ATIS_EXP_TOO_LONG: 400,
  ATIS_CLAIM_MISMATCH: 403,
  ATIS_DIGEST_MISMATCH: 403,
  ATIS_NOT_PARTNER: 403,
  ATIS_PEER_UNKNOWN: 403,
  IDEMPOTENCY_KEY_INVALID: 400,
  IDEMPOTENCY_KEY_MISMATCH: 422,
  ATIS_RATE_LIMITED: 429,
  DIVERSION_UNLINKED: 400,
  DIVERSION_TOO_LONG: 400,
  DIVERSION_TOO_COMPLEX: 400,
  UNAVAILABLE: 503,
  INTERNAL: 500,
  MISCONFIGURED: 500,
};

export interface CpsErrorOptions {
  status?: number;
  /** Seconds, sent as `Retry-After` (429 and 503 answers carry one always: DEFAULT_RETRY_AFTER_SECONDS). */
  retryAfter?: number;
  cause?: unknown;
}

/**
 * The root of every error the project throws on purpose, like jose's `JOSEError`: a stable machine
 * `code` to branch on. `CpsError` (the CPS's answers and the protocol code) and the client library's
 * own errors (src/client/errors.ts) extend it, so `err instanceof StirOobError` and `err.code` cover
 * everything the client library throws.
 */
export class StirOobError extends Error {
  override readonly name: string = "StirOobError";
  readonly code: string;

  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

export class CpsError extends StirOobError {
  override readonly name = "CpsError";
  declare readonly code: CpsErrorCode;
  readonly status: number;
  readonly retryAfter: number | undefined;

  constructor(code: CpsErrorCode, message: string, options: CpsErrorOptions = {}) {
    super(code, message, options);
    this.status = options.status ?? ERROR_STATUS[code];
    this.retryAfter = options.retryAfter;
  }
}

export function isCpsError(value: unknown): value is CpsError {
  return value instanceof CpsError;
}

/** Type URI base for problem `type` members: one stable URI per code. */
export const PROBLEM_TYPE_BASE = "https://stir-oob.dev/problems/";

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  code: CpsErrorCode;
  detail?: string;
}

export function toProblem(err: CpsError): ProblemDetails {
  return {
    type: PROBLEM_TYPE_BASE + err.code.toLowerCase().replaceAll("_", "-"),
    title: err.message,
    status: err.status,
    code: err.code,
  };
}

/**
 * `Retry-After` of a 429 or 503 whose throw site knows no better wait (e.g. `TOKEN_SPENT`: waiting does
 * not help, another token does). Every such answer carries one, so a client can rely on it
 * (docs/wire-format.md 3.5); 1 s rather than 0 keeps a naive retry loop slow.
 */
const DEFAULT_RETRY_AFTER_SECONDS = 1;

/** The `Retry-After` value of an answer for `err`, or undefined when it carries none. */
export function retryAfterHeader(err: CpsError): string | undefined {
  const retryAfter =
    err.retryAfter ?? (err.status === 429 || err.status === 503 ? DEFAULT_RETRY_AFTER_SECONDS : undefined);
  return retryAfter === undefined ? undefined : String(Math.max(0, Math.ceil(retryAfter)));
}

/** The one place a CpsError becomes an HTTP answer: RFC 9457 problem+json, never cached. */
export function problemResponse(err: CpsError): Response {
  const headers = new Headers({
    "Content-Type": "application/problem+json",
    "Cache-Control": "no-store",
  });
  const retryAfter = retryAfterHeader(err);
  if (retryAfter !== undefined) headers.set("Retry-After", retryAfter);
  return new Response(JSON.stringify(toProblem(err)), { status: err.status, headers });
}
