import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Three projects: pure code on Node (`unit`, `vectors`), the Worker inside workerd
// (`integration`, through @cloudflare/vitest-plugin with real Durable Objects), and a real
// `wrangler dev` server over HTTP (`e2e`).
export default defineConfig({
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
            miniflare: { bindings: { BENCH_BASELINE: "true" } },
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
});
