/**
 * Storage-token benchmark, inside workerd (the server's RSA-RAW exists only there):
 *   1. blind signatures per second at the issuer (RFC 9474 BlindSign with native RSA-RAW, 2048-bit);
 *   2. store-with-token throughput as a ratio of store-without-token, interleaved in the same run
 *      (target >= 0.8x). Both arms go through the whole app (middleware, PassportQueue DO); the token
 *      arm adds both signature checks and the TokenLedger DO round trip. Tokens, K_temp signatures
 *      and the sealed blob are made before timing, as a wallet makes them ahead of calls.
 *
 * Run: BENCH_TOKENS=1 npx vitest run --project integration-tokens bench/tokens.workerd.ts
 * (ROUNDS, PER_ROUND and IN_FLIGHT are fixed below; medians over rounds are printed as JSON.)
 */
import { env } from "cloudflare:test";
import { it } from "vitest";
import { app } from "../src/app.js";
import { readConfig } from "../src/config.js";
import { blindSign, issuerKeys } from "../src/tokens/issuer-keys.js";
import {
  directToken,
  issuerPrivateKey,
  sealedFor,
  tokenHeaders,
} from "../test/integration-tokens/helpers.js";
import { closedLoop } from "./lib/closed-loop.mjs";
import { median } from "./lib/stats.mjs";

const ROUNDS = 7;
const SIGN_PER_ROUND = 300;
const STORE_PER_ROUND = 150;
/** Requests in flight: one at a time (latency-bound), and several (throughput-bound). */
const IN_FLIGHT = [1, 8];

/** Runs op(0..n-1) with `inFlight` at a time; operations per second. */
const rate = async (n: number, op: (i: number) => Promise<unknown>, inFlight = 1) =>
  n / (await closedLoop(n, inFlight, op));

it("storage-token benchmark", async () => {
  const key = (await issuerKeys(readConfig(env))).current();
  if (!key) throw new Error("no current issuer key");
  const blinded = Array.from({ length: SIGN_PER_ROUND }, () => {
    const m = crypto.getRandomValues(new Uint8Array(key.modulusBytes));
    m[0] = 1;
    return m;
  });
  const signRates: number[] = [];
  for (let r = 0; r < ROUNDS; r++)
    signRates.push(await rate(SIGN_PER_ROUND, (i) => blindSign(key, blinded[i] ?? blinded[0]!)));

  // Same env for both arms; the switch on lets the baseline store without a token.
  const benchEnv = { ...env, ALLOW_UNTOKENED_STORES: "true" };
  const signer = await issuerPrivateKey("test-current");
  const { text } = await sealedFor("12025550000");
  let seq = 0;
  const nextTn = () => `1303${String(seq++).padStart(7, "0")}`;
  const post = (tn: string, headers: Record<string, string>) =>
    app.request(
      `https://cps.example.com/cps/${tn}/ppts`,
      { method: "POST", headers: { "Content-Type": "application/passport", ...headers }, body: text },
      benchEnv,
    );
  const check = async (res: Response) => {
    if (res.status !== 201) throw new Error(`store answered ${res.status}: ${await res.text()}`);
  };
  const stores: Record<string, unknown> = {};
  for (const inFlight of IN_FLIGHT) {
    const withRates: number[] = [];
    const withoutRates: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const prepared = await Promise.all(
        Array.from({ length: STORE_PER_ROUND }, async () => {
          const tn = nextTn();
          const { token, privateKey } = await directToken("test-current", signer);
          return { tn, headers: await tokenHeaders(token, privateKey, tn, text) };
        }),
      );
      const plainTns = Array.from({ length: STORE_PER_ROUND }, nextTn);
      // Alternate which arm goes first, so warm-up and drift hit both.
      const arms = [
        async () =>
          withoutRates.push(
            await rate(STORE_PER_ROUND, async (i) => check(await post(plainTns[i]!, {})), inFlight),
          ),
        async () =>
          withRates.push(
            await rate(
              STORE_PER_ROUND,
              async (i) => check(await post(prepared[i]!.tn, prepared[i]!.headers)),
              inFlight,
            ),
          ),
      ];
      if (r % 2) arms.reverse();
      for (const arm of arms) await arm();
    }
    stores[`inFlight${inFlight}`] = {
      storeWithoutTokenPerSecond: Math.round(median(withoutRates)),
      storeWithTokenPerSecond: Math.round(median(withRates)),
      ratioWithOverWithout: Number((median(withRates) / median(withoutRates)).toFixed(3)),
      roundRatios: withRates.map((w, i) => Number((w / (withoutRates[i] ?? w)).toFixed(3))),
    };
  }
  const result = {
    issuerBlindSignaturesPerSecond: Math.round(median(signRates)),
    stores,
    rounds: ROUNDS,
    signPerRound: SIGN_PER_ROUND,
    storePerRound: STORE_PER_ROUND,
  };
  console.log(`TOKENS_BENCH ${JSON.stringify(result)}`);
});
