import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { generateIssuerKeyEntry } from "./src/dev/issuer-key.mjs";
import { createTestPki } from "./src/stir/test-pki.js";
import { serializeTestPki } from "./test/helpers/pki.js";

// Three projects: pure code on Node (`unit`, with the vectors), the Worker inside workerd
// (`integration`, through @cloudflare/vitest-plugin with real Durable Objects and KV), and a real
// `wrangler dev` server over HTTP (`e2e`).
//
// The integration Worker trusts a test PKI made here, at test time (TEST ONLY keys, never committed):
// its root goes in as TRUST_ANCHORS_PEM, and the serialised PKI as the test-only TEST_PKI binding.
export default defineConfig(async () => {
  const pki = await serializeTestPki(await createTestPki());
  // Storage-token issuer keys (TEST ONLY, made here): current, next (future), expired (docs/tokens.md).
  const now = Date.now();
  const hour = 3_600_000;
  const issuerKeys = JSON.stringify([
    await generateIssuerKeyEntry("test-current", now - hour, now + 24 * hour),
    await generateIssuerKeyEntry("test-next", now + 12 * hour, now + 48 * hour),
    await generateIssuerKeyEntry("test-expired", now - 48 * hour, now - hour),
  ]);
  const workerBindings = {
    BENCH_BASELINE: "true",
    CPS_ORIGIN: "https://cps.example.com",
    TRUST_ANCHORS_PEM: pki.rootPem,
    TEST_PKI: JSON.stringify(pki),
    TOKEN_ISSUER_KEYS: issuerKeys,
    // Runs of the malformed-request property in test/integration/fuzz.test.ts: a short run in
    // `npm test`, 10,000 with `npm run fuzz`.
    FUZZ_RUNS: process.env.FUZZ_RUNS ?? "1000",
  };
  return {
    test: {
      projects: [
        {
          test: {
            name: "unit",
            include: ["test/unit/**/*.test.ts", "test/vectors/**/*.test.ts"],
            environment: "node",
          },
        },
        {
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: workerBindings,
              },
            }),
          ],
          test: {
            name: "integration",
            include: ["test/integration/**/*.test.ts"],
            testTimeout: 30_000,
          },
        },
        {
          // Storage tokens enforced (the production setting): ALLOW_UNTOKENED_STORES off.
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: { ...workerBindings, ALLOW_UNTOKENED_STORES: "false", TOKEN_DAILY_QUOTA: "40" },
              },
            }),
          ],
          test: {
            name: "integration-tokens",
            // BENCH_TOKENS=1 adds the in-workerd token benchmark (bench/tokens.workerd.ts).
            include: [
              "test/integration-tokens/**/*.test.ts",
              ...(process.env.BENCH_TOKENS ? ["bench/tokens.workerd.ts"] : []),
            ],
            testTimeout: process.env.BENCH_TOKENS ? 600_000 : 30_000,
          },
        },
        {
          test: {
            name: "e2e",
            include: ["test/e2e/**/*.test.ts"],
            environment: "node",
            testTimeout: 60_000,
            hookTimeout: 90_000,
            // One wrangler dev at a time keeps the two-core machine from thrashing.
            fileParallelism: false,
          },
        },
      ],
    },
  };
});
