/**
 * Errors the client library raises itself, beside the `CpsError`s the CPS answers with and the
 * protocol code throws. Codes are stable strings; messages are short and carry no numbers or blobs.
 */

export type ClientErrorCode =
  /** §8.1 step 1/2: the credential cannot sign for the `orig` number. */
  | "NOT_AUTHORITATIVE"
  /** §8.1 step 3: the key directory has no encryption key for the called number. */
  | "NO_KEYS"
  /** §8.1 "stores ... only after that is completed": a store failed, the call must not rely on OOB. */
  | "STORE_FAILED"
  /** §8.1: the CPS copy MUST be a full-form PASSporT; an Identity header carried a compact one. */
  | "COMPACT_FORM"
  /** No storage token could be obtained for a store. */
  | "NO_TOKEN";

export class StirClientError extends Error {
  override readonly name = "StirClientError";
  readonly code: ClientErrorCode;
  /** Extra data for callers (e.g. which stores did succeed before one failed). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ClientErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }
}
