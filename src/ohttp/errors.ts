/**
 * Errors of the Oblivious HTTP code (RFC 9458) and its Binary HTTP messages (RFC 9292).
 *
 * Every failure that hostile input can cause surfaces as an `OhttpError` with a stable `code`, never
 * as a TypeError, RangeError or DOMException from the parsers or the crypto underneath, so the gateway
 * maps each one to a 4xx answer and the client library to its own error without guessing.
 */
import { StirOobError } from "../errors.js";

export type OhttpErrorCode =
  /** The encapsulated request names a key id the gateway holds no live key for. */
  | "KEY_ID_UNKNOWN"
  /** A KEM, KDF or AEAD we do not implement, or not listed in that key's configuration. */
  | "UNSUPPORTED_SUITE"
  /** Truncated or garbage bytes: encapsulation, key configuration or Binary HTTP message. */
  | "MALFORMED"
  /** The AEAD did not open: a tampered request or response, or the wrong key. */
  | "DECRYPT_FAILED"
  /** Over a size limit, checked before any work. */
  | "TOO_LARGE"
  /** The OHTTP_KEYS secret is wrong: a server misconfiguration, not client input. */
  | "KEYS_INVALID";

/**
 * RFC 9458 §5.3: the problem type a gateway may use when a request used a key configuration it does not
 * (or no longer) hold, so the client refetches the configuration.
 */
export const OHTTP_KEY_PROBLEM_TYPE = "https://iana.org/assignments/http-problem-types#ohttp-key";

const STATUS: Readonly<Record<OhttpErrorCode, number>> = {
  KEY_ID_UNKNOWN: 400,
  UNSUPPORTED_SUITE: 400,
  MALFORMED: 400,
  DECRYPT_FAILED: 400,
  TOO_LARGE: 413,
  KEYS_INVALID: 500,
};

export class OhttpError extends StirOobError {
  override readonly name = "OhttpError";
  declare readonly code: OhttpErrorCode;
  /** The status a gateway answers with (RFC 9458 §5.2: a 4xx for anything the request got wrong). */
  readonly status: number;
  /** RFC 9458 §5.3: the request used a key configuration the gateway does not hold. */
  readonly keyConfigProblem: boolean;

  constructor(code: OhttpErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.status = STATUS[code];
    this.keyConfigProblem = code === "KEY_ID_UNKNOWN" || code === "UNSUPPORTED_SUITE";
  }
}

export function isOhttpError(value: unknown): value is OhttpError {
  return value instanceof OhttpError;
}
