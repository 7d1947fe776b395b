/**
 * PASSporT verification throughput with a cached certificate chain, beside raw WebCrypto ES256 verify
 * of the same bytes, in the same run. Reports medians over several rounds and the ratio (target >= 0.7).
 *
 * Run (Node 20 has no TypeScript stripping, so bundle first):
 *   npx esbuild bench/passport-verify.ts --bundle --platform=node --format=esm --outfile=/tmp/passport-verify.mjs \
 *     && node /tmp/passport-verify.mjs
 */

import { CertificateValidator } from "../src/stir/certificates.js";
import { createPassport, verifyPassport } from "../src/stir/passport.js";
import { createTestPki } from "../src/stir/test-pki.js";
import { X5uFetcher } from "../src/stir/x5u.js";
import { closedLoop } from "./lib/closed-loop.mjs";
import { median } from "./lib/stats.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 7);
const PER_ROUND = Number(process.env.PER_ROUND ?? 3000);
const X5U = "https://cert.example.org/sp.pem";

/** Runs op n times, one after the other; operations per second. */
const rate = async (n: number, op: () => Promise<unknown>) => n / (await closedLoop(n, 1, op));

async function main(): Promise<void> {
  const pki = await createTestPki();
  const validator = new CertificateValidator({ anchors: [pki.root.certificate] });
  // The x5u fetch is served in memory: this measures verification, not the network.
  const x5u = new X5uFetcher({
    fetch: async () => new Response(pki.valid.pem, { headers: { "cache-control": "max-age=3600" } }),
  });
  const now = Math.floor(Date.now() / 1000);
  const jws = await createPassport(
    {
      x5u: X5U,
      ppt: "shaken",
      claims: {
        attest: "A",
        dest: { tn: ["12125551213"] },
        iat: now,
        orig: { tn: "12025550142" },
        origid: crypto.randomUUID(),
      },
    },
    pki.valid.privateKey,
  );
  const resolve = async (h: { x5u: string }) =>
    (await validator.validate(await x5u.fetchChain(h.x5u))).publicKey;
  const full = () => verifyPassport(jws, resolve, { now, freshnessSeconds: 3600 });

  // Raw WebCrypto over exactly the signed bytes, with the same imported key.
  const [h, p, s] = jws.split(".") as [string, string, string];
  const data = new TextEncoder().encode(`${h}.${p}`);
  const sig = Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const key = await resolve({ x5u: X5U });
  const raw = async () => {
    if (!(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, sig, data)))
      throw new Error("raw verify failed");
  };

  await full(); // fills the chain cache and checks the token once
  for (let i = 0; i < 500; i++) {
    await full();
    await raw();
  }
  const fullRates: number[] = [];
  const rawRates: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate the order so neither side always runs on a warmer or cooler machine.
    if (r % 2 === 0) {
      rawRates.push(await rate(PER_ROUND, raw));
      fullRates.push(await rate(PER_ROUND, full));
    } else {
      fullRates.push(await rate(PER_ROUND, full));
      rawRates.push(await rate(PER_ROUND, raw));
    }
  }
  const f = median(fullRates);
  const w = median(rawRates);
  const out = {
    runtime: `node ${process.version}`,
    rounds: ROUNDS,
    perRound: PER_ROUND,
    passportVerifyPerSec: Math.round(f),
    rawWebCryptoVerifyPerSec: Math.round(w),
    ratio: Number((f / w).toFixed(3)),
    target: 0.7,
    cachedChains: validator.cacheSize,
  };
  console.log(JSON.stringify(out, null, 2));
  if (out.ratio < out.target) process.exitCode = 1;
}

await main();
