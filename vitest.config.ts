import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
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
                bindings: {
                  BENCH_BASELINE: "true",
                  CPS_ORIGIN: "https://cps.example.com",
                  TRUST_ANCHORS_PEM: pki.rootPem,
                  TEST_PKI: JSON.stringify(pki),
                },
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
