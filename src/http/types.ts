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
  };
}
