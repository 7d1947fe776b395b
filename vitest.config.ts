import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { readConfig } from "./src/config.js";
import { generateIssuerKeyEntry, generateOhttpKeyEntry } from "./src/dev/issuer-key.mjs";
import { createTestPki } from "./src/stir/test-pki.js";
import { x5uResponse } from "./test/helpers/atis-x5u.js";
import { TEST_CPS_ORIGIN } from "./test/helpers/origin.js";
import { crlResponse, serializeTestPki } from "./test/helpers/pki.js";

// Three projects: pure code on Node (`unit`, with the vectors), the Worker inside workerd
// (`integration`, through @cloudflare/vitest-plugin with real Durable Objects and KV), and a real
// `wrangler dev` server over HTTP (`e2e`).
//
// The integration Worker trusts a test PKI made here, at test time (TEST ONLY keys, never committed):
// its root goes in as TRUST_ANCHORS_PEM, and the serialised PKI as the test-only TEST_PKI binding.
/** src/config.ts defaults with counts / 100 and the TTL 60 s -> 2 s (test/integration-tokens/scaled). */
function scaledLimits(): Record<string, string> {
  const d = readConfig({} as Env);
  return {
    PASSPORT_TTL_SECONDS: String((d.ttlSeconds * 2) / 60),
    MAX_LIVE_PER_NUMBER: String(d.maxLivePerNumber / 100),
    TOKEN_DAILY_QUOTA: String(d.tokenDailyQuota / 100),
    TOKEN_MAX_USES: String(d.tokenMaxUses),
    TOKEN_MAX_USES_PER_NUMBER: String(d.tokenMaxUsesPerNumber),
  };
}

/** Requests per 10 s one credential may make on the ATIS routes in the `integration` project. */
const ATIS_TEST_RATE_LIMIT = 100;

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
  // Oblivious HTTP gateway keys (TEST ONLY, made here; docs/ohttp.md): two live (a rotation's overlap),
  // one expired, one not yet valid. test/integration/ohttp-gateway.test.ts relies on these ids.
  const ohttpKeys = JSON.stringify([
    generateOhttpKeyEntry(1, { notBefore: now - hour, notAfter: now + 24 * hour }),
    generateOhttpKeyEntry(2, { notBefore: now - 60_000 }),
    generateOhttpKeyEntry(3, { notBefore: now - 48 * hour, notAfter: now - hour }),
    generateOhttpKeyEntry(4, { notBefore: now + 12 * hour }),
  ]);
  // The one relay the gateway accepts (TEST ONLY, made here per run; docs/ohttp.md "Which relays may
  // send"): its token goes in as the test-only TEST_OHTTP_RELAY_TOKEN, its SHA-256 in OHTTP_RELAYS.
  const relayToken = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  const relayTokenSha256 = Buffer.from(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(relayToken)),
  ).toString("base64url");
  // The operator's token for GET /metrics and /console/data (TEST ONLY, made here per run;
  // docs/metrics.md): its SHA-256 as METRICS_TOKEN_SHA256, the token as the test-only TEST_METRICS_TOKEN.
  const metricsToken = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  const metricsTokenSha256 = Buffer.from(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(metricsToken)),
  ).toString("base64url");
  // The Worker's outbound fetches: the test PKI's CRL distribution points are answered with its real
  // CRLs (the CPS's CRL checker, src/stir/crl.ts, fetches and verifies them), its certificate
  // repository with its chains (x5u of ATIS access tokens and PASSporTs, test/helpers/atis-x5u.ts);
  // anything else goes on to the network as before (test/integration/revocation.test.ts).
  const outboundService = async (request: Request): Promise<Response> =>
    crlResponse(pki, request.url) ??
    x5uResponse(pki, request.url) ??
    fetch(request.url, {
      method: request.method,
      headers: request.headers,
      redirect: "manual",
      ...(request.method === "GET" || request.method === "HEAD" ? {} : { body: await request.arrayBuffer() }),
    });
  const workerBindings = {
    // Loopback: development switches are honoured only then (src/config.ts `deploymentProblem`).
    CPS_ORIGIN: TEST_CPS_ORIGIN,
    TRUST_ANCHORS_PEM: pki.rootPem,
    TEST_PKI: JSON.stringify(pki),
    TOKEN_ISSUER_KEYS: issuerKeys,
    OHTTP_KEYS: ohttpKeys,
    OHTTP_RELAYS: JSON.stringify([{ name: "test-relay", tokenSha256: relayTokenSha256 }]),
    TEST_OHTTP_RELAY_TOKEN: relayToken,
    METRICS_TOKEN_SHA256: metricsTokenSha256,
    TEST_METRICS_TOKEN: metricsToken,
    // Key of the decoy PRF (src/dummies/decoys.ts), made here per run (TEST ONLY).
    DECOY_SECRET: Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex"),
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
                // wrangler.toml is the production configuration; this project adds the dev switch, and one
                // hot number spread over 4 objects (test/integration/hot-numbers.test.ts; no other test uses it).
                bindings: { ...workerBindings, ALLOW_UNTOKENED_STORES: "true", HOT_NUMBERS: "13125557700:4" },
                outboundService,
                // The ATIS rate limit per credential (wrangler.toml: 5,000 per 10 s) made small enough for
                // test/integration/atis.test.ts to reach it; miniflare counts it for real, per 10 s window.
                ratelimits: {
                  ATIS_RATE_LIMITER: {
                    namespace_id: "1001",
                    simple: { limit: ATIS_TEST_RATE_LIMIT, period: 10 },
                  },
                },
              },
            }),
          ],
          test: {
            name: "integration",
            // base64url.test.ts also here: the runtime's own base64 is what workerd uses (src/stir/base64url.ts).
            include: ["test/integration/**/*.test.ts", "test/unit/base64url.test.ts"],
            testTimeout: 30_000,
          },
        },
        {
          // Storage tokens enforced (the production setting): ALLOW_UNTOKENED_STORES off.
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                // Multi-use tokens (not the default of 1), so the per-token and per-number counts are exercised.
                bindings: {
                  ...workerBindings,
                  ALLOW_UNTOKENED_STORES: "false",
                  TOKEN_DAILY_QUOTA: "40",
                  TOKEN_MAX_USES: "10",
                  TOKEN_MAX_USES_PER_NUMBER: "2",
                  // A hot number, for tokened retries across its shards (hot-retry.test.ts).
                  HOT_NUMBERS: "13125557701:4",
                },
                outboundService,
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
            exclude: ["test/integration-tokens/scaled/**"],
            testTimeout: process.env.BENCH_TOKENS ? 600_000 : 30_000,
          },
        },
        {
          // The production token and queue limits (src/config.ts defaults) scaled down: counts / 100,
          // time / 30 (TTL 60 s -> 2 s), so "one minute a day" becomes 2 s (issue 13 #2).
          plugins: [
            cloudflareTest({
              wrangler: { configPath: "./wrangler.toml" },
              miniflare: {
                bindings: { ...workerBindings, ALLOW_UNTOKENED_STORES: "false", ...scaledLimits() },
              },
            }),
          ],
          test: {
            name: "integration-tokens-scaled",
            // BENCH_ROWS=1 adds the storage-operations count of one call (bench/rows.workerd.ts).
            include: [
              "test/integration-tokens/scaled/**/*.test.ts",
              ...(process.env.BENCH_ROWS ? ["bench/rows.workerd.ts"] : []),
            ],
            testTimeout: 60_000,
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
