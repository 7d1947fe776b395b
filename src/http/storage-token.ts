/**
 * The storage-token check of `POST /cps/{tn}/ppts` (RFC 8816 §7.5, docs/tokens.md), so the store
 * handler stays free of auth logic. Two middlewares around the one decoding of the store request
 * (`storeRequest`, store-request.ts), which keeps the order of the checks, so the same refusal wins
 * when several things are wrong:
 *   `readStorageToken`, before the body is read:
 *   1. both headers present (else 401 TOKEN_MISSING; unless the local-dev switch is on and neither is);
 *   2. the token parses, its K_temp is a usable public key (400 TOKEN_MALFORMED: no identity,
 *      small-order, off-curve or non-canonical point, `checkTempKey`), and it names a known, unexpired
 *      issuer key (401 TOKEN_UNKNOWN_KEY);
 *   `storeRequest`: the number and the envelope, decoded once (400 INVALID_TN, the envelope's codes);
 *   `requireStorageToken`, over that decoded request:
 *   3. the issuer's RSA-PSS signature over the token message and K_temp's signature over
 *      (canonical number || blob) both verify (401 TOKEN_INVALID);
 *   4. the TokenLedger counts the use exactly (429 TOKEN_SPENT / TOKEN_RATE_LIMITED; 403 TOKEN_REVOKED
 *      when a feedback report proved a blob it paid for bogus).
 * An optional `CPS-Feedback-Tag` (a tokened store's feedback tag, docs/tokens.md "Feedback") is checked
 * with the headers of step 2 (400 FEEDBACK_TAG_MALFORMED) and kept by the ledger with the token for a
 * counted store only (a retry keeps the first store's tag: the receipt does not cover this header); on an
 * untokened store (local development) it is ignored: there is no token to make worthless.
 * Nothing of the token reaches the handler or storage: the signatures are dropped here.
 * A use is counted before the store runs; a store that then fails (e.g. QUEUE_FULL) has spent it.
 * Sending the same request again within the TTL is not counted twice: the ledger keeps a receipt per
 * counted spend, a hash of (token, number, blob, K_temp signature), so only the very same request is a
 * retry; the other half of that hash goes to the store handler as `retryKey`, on which the
 * PassportQueue answers a repeat with the id it already holds (docs/tokens.md "Retried stores").
 */
import type { MiddlewareHandler } from "hono";
import { ledgerShard } from "../durable-objects/token-ledger.js";
import { CpsError } from "../errors.js";
import { logEvent } from "../log.js";
import { encodeBase64url } from "../stir/base64url.js";
import { FEEDBACK_TAG_HEADER, parseFeedbackTag } from "../stir/feedback.js";
import {
  parseStorageToken,
  parseStoreSignature,
  type StorageToken,
  storeReceipt,
  TOKEN_HEADER,
  TOKEN_SIGNATURE_HEADER,
  tokenIdOf,
  verifyStoreSignature,
  verifyTokenSignature,
} from "../stir/storage-token.js";
import { tokenLedgerShard } from "../storage/objects.js";
import { type IssuerKey, issuerKeys } from "../tokens/issuer-keys.js";
import type { StoreRequestEnv } from "./store-request.js";
import type { AppEnv } from "./types.js";

/** A store's token as `readStorageToken` found it: parsed, its issuer key known and unexpired. */
export interface PresentedToken {
  readonly token: StorageToken;
  readonly storeSignature: Uint8Array;
  readonly key: IssuerKey;
  /** The store's feedback tag (canonical base64url), when it sent one. */
  readonly feedbackTag: string | undefined;
}

/** What `readStorageToken` adds to the context: `null` for an untokened store (local dev only). */
export interface StorageTokenEnv {
  Variables: { storageToken: PresentedToken | null };
}

/**
 * What `requireStorageToken` adds: base64url of the queue's 16-byte half of the store's retry receipt,
 * a hash of (token, number, blob, K_temp signature) (`storeReceipt`). Only a true retry (same token,
 * same signature, same number and blob) repeats it. Undefined for an untokened store.
 */
export interface RetryKeyEnv {
  Variables: { retryKey: string | undefined };
}

const utf8 = new TextEncoder();
let untokenedWarned = false;

function ledger(env: Env, tokenId: Uint8Array) {
  return tokenLedgerShard(env, ledgerShard(tokenId));
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** Steps 1 and 2 of the module comment: the headers, before the body is read. Sets `storageToken`. */
export function readStorageToken(): MiddlewareHandler<AppEnv & StorageTokenEnv> {
  return async function readStorageToken(c, next) {
    const tokenHeader = c.req.header(TOKEN_HEADER);
    const signatureHeader = c.req.header(TOKEN_SIGNATURE_HEADER);
    if (tokenHeader === undefined && signatureHeader === undefined) {
      if (!c.get("config").allowUntokenedStores) {
        throw new CpsError("TOKEN_MISSING", `Send ${TOKEN_HEADER} and ${TOKEN_SIGNATURE_HEADER}`);
      }
      if (!untokenedWarned) {
        untokenedWarned = true;
        logEvent({
          event: "untokened_stores_enabled",
          level: "warn",
          message:
            "ALLOW_UNTOKENED_STORES is on: stores without a storage token are accepted. Never in production.",
        });
      }
      c.set("storageToken", null);
      return next();
    }
    if (tokenHeader === undefined || signatureHeader === undefined) {
      throw new CpsError("TOKEN_MISSING", `Send both ${TOKEN_HEADER} and ${TOKEN_SIGNATURE_HEADER}`);
    }
    const token = parseStorageToken(tokenHeader);
    const storeSignature = parseStoreSignature(signatureHeader);
    const tagHeader = c.req.header(FEEDBACK_TAG_HEADER);
    const feedbackTag = tagHeader === undefined ? undefined : parseFeedbackTag(tagHeader);
    const keys = await issuerKeys(c.get("config"));
    const key = keys.valid(token.keyId);
    if (!key) throw new CpsError("TOKEN_UNKNOWN_KEY", "The token's issuer key is unknown or expired");
    c.set("storageToken", { token, storeSignature, key, feedbackTag });
    return next();
  };
}

/** Steps 3 and 4 of the module comment, over the decoded store request. Sets `retryKey`. */
export function requireStorageToken(): MiddlewareHandler<
  AppEnv & StorageTokenEnv & StoreRequestEnv & RetryKeyEnv
> {
  return async function requireStorageToken(c, next) {
    const presented = c.get("storageToken");
    if (presented === null) {
      c.set("retryKey", undefined);
      return next();
    }
    const { token, storeSignature, key, feedbackTag } = presented;
    const { tn, blob } = c.get("store");
    const [issuerOk, kTempOk, tokenId] = await Promise.all([
      verifyTokenSignature(key.publicKey, token),
      verifyStoreSignature(token.kTempSpki, storeSignature, tn, blob),
      tokenIdOf(token.kTempSpki),
    ]);
    if (!issuerOk) throw new CpsError("TOKEN_INVALID", "The storage token's signature does not verify");
    if (!kTempOk) throw new CpsError("TOKEN_INVALID", "The K_temp signature over this store does not verify");

    // The ledger sees hashes only: of K_temp, of (K_temp hash, number) for the per-number window, and
    // half of the store's receipt, a hash of (token, number, blob, K_temp signature): a retry only
    // when it is the same request. The queue gets the other half as its retry key.
    const [pair, receipt] = await Promise.all([
      sha256(new Uint8Array([...tokenId, 0, ...utf8.encode(tn)])),
      storeReceipt(tokenId, tn, blob, storeSignature),
    ]);
    const result = await ledger(c.env, tokenId).spend(
      encodeBase64url(tokenId),
      encodeBase64url(pair.subarray(0, 16)),
      key.notAfter,
      encodeBase64url(receipt.ledger),
      feedbackTag,
    );
    if (!result.ok) {
      if (result.code === "TOKEN_REVOKED") {
        throw new CpsError("TOKEN_REVOKED", "A feedback report made this storage token worthless");
      }
      if (result.code === "TOKEN_SPENT") {
        throw new CpsError("TOKEN_SPENT", "This storage token has no stores left");
      }
      throw new CpsError("TOKEN_RATE_LIMITED", "This token reached its limit for this number", {
        retryAfter: result.retryAfterSeconds,
      });
    }
    c.set("retryKey", encodeBase64url(receipt.queue));
    return next();
  };
}
