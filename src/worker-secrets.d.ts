// The Worker's secrets: `wrangler secret put NAME` in production, npm start's 0600 env file locally
// (src/dev/start.mjs). wrangler.toml must not list them as vars (a var would clash with the secret at
// deploy), so `npm run types` cannot see them; they are declared here. Optional: a deployment may lack
// one, and the code that needs it answers MISCONFIGURED.
declare namespace Cloudflare {
  interface Env {
    /** PEM of the STIR trust anchors credential tokens must chain to. */
    TRUST_ANCHORS_PEM?: string;
    /** Storage-token issuer keys, JSON [{id, privateKeyPkcs8, notBefore, notAfter}] (docs/tokens.md). */
    TOKEN_ISSUER_KEYS?: string;
    /** Random 32 bytes, base64url: the key of the decoy schedule. */
    DECOY_SECRET?: string;
    /**
     * Oblivious HTTP gateway keys (RFC 9458), JSON [{id: 0..255, privateKey: base64url X25519,
     * notBefore?: ms, notAfter?: ms}]. Unset: the gateway routes answer 404 (docs/ohttp.md).
     */
    OHTTP_KEYS?: string;
    /**
     * The relays the OHTTP gateway accepts, JSON [{name, tokenSha256: base64url SHA-256 of the relay's
     * OHTTP-Relay-Token}]. Unset: any sender may POST to the gateway (docs/ohttp.md).
     */
    OHTTP_RELAYS?: string;
    /**
     * SHA-256 (base64url or hex) of the operator's bearer token for GET /metrics and the console's
     * data (docs/metrics.md). Unset: both answer 404.
     */
    METRICS_TOKEN_SHA256?: string;
    /**
     * TEST-ONLY demo credentials for /demo (src/dev/demo-credentials.mjs; `npm start` sets it). Honoured
     * only with a loopback CPS_ORIGIN; with any other origin the Worker refuses to serve.
     */
    DEMO_CREDENTIALS?: string;
    /**
     * This CPS's own STIR credential for re-publishing ATIS publishes to its peers (ATIS_PEERS), JSON
     * {privateKeyPkcs8: base64url DER, x5c: [base64 DER, ...]} (docs/atis-api.md). Unset: nothing is
     * re-published.
     */
    ATIS_CPS_CREDENTIAL?: string;
  }
}
