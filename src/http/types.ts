/** Hono generics shared by the app and every route file. */
import type { CpsConfig } from "../config.js";
import type { VerifiedCredentialToken } from "../stir/credential-token.js";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    config: CpsConfig;
    /** Set by `requireCredential` on authenticated routes. */
    credential: VerifiedCredentialToken;
    /** The decoded envelope of a store, set by `requireStorageToken` when the store carries a token. */
    blob: Uint8Array | undefined;
    /**
     * Set by `requireStorageToken`: base64url of the queue's 16-byte half of the store's retry receipt,
     * a hash of (token, number, blob, K_temp signature) (`storeReceipt`). Only a true retry (same
     * token, same signature, same number and blob) repeats it. Undefined for an untokened store.
     */
    retryKey: string | undefined;
  };
}
