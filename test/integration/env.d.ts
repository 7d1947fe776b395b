// Test-only bindings that vitest.config.ts adds to the integration Worker.
declare namespace Cloudflare {
  interface Env {
    /** Serialised test PKI (test/helpers/pki.ts). */
    TEST_PKI: string;
    /** Runs of the malformed-request property (vitest.config.ts; `npm run fuzz` sets 10,000). */
    FUZZ_RUNS: string;
  }
}
