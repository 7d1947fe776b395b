#!/usr/bin/env node
/**
 * Key-directory and discovery lookups per second over real HTTP against `wrangler dev` (workerd,
 * local persisted KV), cached and uncached:
 *
 *   node bench/directory.mjs [--requests 2000] [--concurrency 16] [--rounds 3]
 *
 *   keys-uncached       GET /keys/{tn}, a different number each request (Cache API miss: 11 KV lists,
 *                       then one bulk KV get of the 1-2 entries with a live key)
 *   keys-cached         GET /keys/{tn}, one number (Cache API hit after the first)
 *   discovery-uncached  GET /.well-known/stir-oob?tn=, a different number each request (11 KV gets)
 *   discovery-cached    the same, one number
 *   prefetch-uncached   GET /keys?prefix=, a different 2-open-digit block each request
 *   health              GET /health, the no-storage baseline in the same run (machine load shows here)
 *
 * Setup registers, with a test-PKI credential (TEST ONLY keys), as signed key records, one key for the block 1415555xxxx
 * and one key for each of 200 single numbers inside it, so every lookup returns 1-2 keys.
 */
import { parseArgs } from "node:util";
import { freePort, startLocalServer } from "../src/dev/local-server.mjs";
import { importBundle } from "../src/dev/ts-module.mjs";
import { positive } from "./lib/args.mjs";
import { httpLoad } from "./lib/closed-loop.mjs";
import { progressLog } from "./lib/report.mjs";

const { values: flags } = parseArgs({
  options: {
    requests: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "16" },
    rounds: { type: "string", default: "3" },
  },
});
const REQUESTS = positive(flags, "requests");
const CONCURRENCY = positive(flags, "concurrency");
const ROUNDS = positive(flags, "rounds");
const progress = progressLog("bench");

/** GET urlFor(0 .. count - 1) at CONCURRENCY; anything but a 200 is counted under its status. */
const load = (count, urlFor) => httpLoad(count, CONCURRENCY, (i) => [urlFor(i), undefined, 200]);

const m = await importBundle({
  name: "bench-directory",
  source: `
        export { createTestPki } from "./src/stir/test-pki.ts";
        export { issueCredentialToken } from "./src/stir/credential-token.ts";
        export { generateRecipientKeyPair } from "./src/stir/envelope.ts";
        export { signKeyRecord } from "./src/stir/signed-key-record.ts";`,
});
const pki = await m.createTestPki();
const holder = await pki.issue({ tnAuthList: [{ type: "range", start: "14155550000", count: 10000 }] });
const inspector = await freePort();
const server = await startLocalServer({
  vars: { TRUST_ANCHORS_PEM: pki.root.certificate.toString("pem"), KEYS_CACHE_SECONDS: "60" },
  args: ["--inspector-port", String(inspector)],
});
try {
  const url = server.url;
  /** Registers a fresh key for `path` (a number or block) as a record signed by the holder. */
  const put = async (path, label) => {
    const record = await m.signKeyRecord({
      publicKey: (await m.generateRecipientKeyPair()).publicKey,
      blocks: [path],
      label,
      exp: Math.floor(Date.now() / 1000) + 86_400,
      privateKey: holder.privateKey,
      x5c: holder.der,
    });
    const token = await m.issueCredentialToken({
      privateKey: holder.privateKey,
      x5c: holder.der,
      audience: url,
      action: "keys:put",
    });
    const res = await fetch(`${url}/keys/${path}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ record }),
    });
    if (res.status !== 201) throw new Error(`setup PUT ${path}: ${res.status} ${await res.text()}`);
  };
  progress("registering 201 keys");
  await put("1415555xxxx", "block");
  for (let i = 0; i < 200; i++) await put(`1415555${String(i * 50).padStart(4, "0")}`, `n${i}`);

  let offset = 0; // uncached rounds never reuse a number
  const scenarios = {
    // Baseline on the same server and machine: a route with no storage at all.
    health: () => () => `${url}/health`,
    "keys-uncached": () => {
      const base = offset;
      offset += REQUESTS;
      return (i) => `${url}/keys/1415555${String((base + i) % 10000).padStart(4, "0")}`;
    },
    "keys-cached": () => () => `${url}/keys/14155550050`,
    "discovery-uncached": () => {
      const base = offset;
      offset += REQUESTS;
      return (i) => `${url}/.well-known/stir-oob?tn=1${String(2000000000 + base + i)}`;
    },
    "discovery-cached": () => () => `${url}/.well-known/stir-oob?tn=14155550050`,
    "prefetch-uncached": () => {
      const base = offset;
      offset += REQUESTS;
      return (i) => `${url}/keys?prefix=1${String(400000000 + base + i).slice(0, 8)}xx`;
    },
  };
  const results = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, make] of Object.entries(scenarios)) {
      const res = await load(REQUESTS, make());
      results[name] = [...(results[name] ?? []), res];
      progress(`round ${r + 1} ${name}: ${res.rps.toFixed(0)}/s p50 ${res.p50.toFixed(1)} ms`);
    }
  }
  console.log(`\n${REQUESTS} requests x ${ROUNDS} rounds, concurrency ${CONCURRENCY}, median round:`);
  console.log("scenario             req/s    p50 ms   p99 ms   non-200");
  for (const [name, rounds] of Object.entries(results)) {
    const med = [...rounds].sort((a, b) => a.rps - b.rps)[Math.floor(rounds.length / 2)];
    console.log(
      `${name.padEnd(20)} ${med.rps.toFixed(0).padStart(6)} ${med.p50.toFixed(2).padStart(9)} ${med.p99.toFixed(2).padStart(8)}   ${JSON.stringify(med.unexpected)}`,
    );
  }
} finally {
  await server.stop();
}
