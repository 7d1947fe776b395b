/**
 * The client library's errors. One root, `StirOobError` (src/errors.ts): every error the library
 * throws on purpose extends it and carries a stable string `code` (jose's errors module is the
 * model). Two families below it:
 * - `CpsError`: what a CPS or key directory answered (its problem+json `code`, the HTTP `status`,
 *   `retryAfter`), or a protocol failure of the input (`INVALID_TN`, `PASSPORT_*`, `CERT_*`, ...);
 * - `StirClientError`: decisions of the client itself, with a `ClientErrorCode`; its subclass
 *   `CpsUnavailableError` is a service that could not be reached or answered off the API.
 * Messages are short and carry no numbers, blobs or tokens (docs/design.md invariant 6).
 * Only misuse of the API (a missing constructor option) throws a plain `TypeError`.
 */
import { StirOobError } from "../errors.js";

export { CpsError, type CpsErrorCode, StirOobError } from "../errors.js";

export type ClientErrorCode =
  /** §8.1 step 1/2: the credential cannot sign for the `orig` number. */
  | "NOT_AUTHORITATIVE"
  /** §8.1 step 3: the key directory has no encryption key for the called number. */
  | "NO_KEYS"
  /** §11: keys were served for the called number, but none has a signed record that passed the check. */
  | "NO_VALID_KEYS"
  /** §8.1 "stores ... only after that is completed": a store failed, the call must not rely on OOB. */
  | "STORE_FAILED"
  /** §8.1: the CPS copy MUST be a full-form PASSporT; an Identity header carried a compact one. */
  | "COMPACT_FORM"
  /** No storage token could be obtained for a store (the token source failed in another way). */
  | "NO_TOKEN"
  /** The token wallet holds no unspent token: refill it (docs/tokens.md). */
  | "WALLET_EMPTY"
  /** Tokens were asked for, but no credential to obtain them with is configured. */
  | "NO_CREDENTIAL"
  /** `requireRelay` is set and no relay is configured: nothing was sent (docs/ohttp.md). */
  | "RELAY_REQUIRED"
  /** `CpsUnavailableError`: not reached (network, timeout) or an answer the API never sends. */
  | "UNAVAILABLE";

export class StirClientError extends StirOobError {
  override readonly name: string = "StirClientError";
  declare readonly code: ClientErrorCode;
  /** Extra data for callers (e.g. which stores did succeed before one failed). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ClientErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
    this.details = options.details ?? {};
  }
}

/**
 * The CPS (or another service) could not be reached (network failure, timeout), or answered
 * something the API never sends. Always code `UNAVAILABLE`, the code a CPS's own 503 carries too:
 * either way, try again later.
 */
export class CpsUnavailableError extends StirClientError {
  override readonly name = "CpsUnavailableError";
  declare readonly code: "UNAVAILABLE";
  /** The URL that failed (no query string; never carries a blob or token). */
  readonly url: string;

  constructor(message: string, url: string, options: { cause?: unknown } = {}) {
    super("UNAVAILABLE", message, options);
    this.url = url;
  }
}
