/** Hono generics shared by the app and every route file. */
import type { CpsConfig } from "../config.js";
import type { VerifiedCredentialToken } from "../stir/credential-token.js";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    config: CpsConfig;
    /** Set by `requireCredential` on authenticated routes. */
    credential: VerifiedCredentialToken;
    /** The decoded envelope of a store, once `requireStorageToken` has read it (decoded once). */
    blob: Uint8Array;
  };
}
