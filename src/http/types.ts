/**
 * Hono generics shared by the app and every route file. Variables only some routes have are declared
 * by the middleware that sets them (e.g. `StoreRequestEnv` in store-request.ts), so a handler can read
 * them only behind that middleware.
 */
import type { CpsConfig } from "../config.js";
import type { VerifiedCredentialToken } from "../stir/credential-token.js";

export interface AppEnv {
  Bindings: Env;
  Variables: {
    config: CpsConfig;
    /** Set by `requireCredential` on authenticated routes. */
    credential: VerifiedCredentialToken;
  };
}
