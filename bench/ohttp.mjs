#!/usr/bin/env node
/**
 * A call through the Oblivious HTTP relay as a ratio to a direct call (issue 19; docs/ohttp.md), in
 * one run over two local `wrangler dev` processes: the CPS (its gateway on) and the relay Worker.
 *
 *   node bench/ohttp.mjs -- [--rounds 5] [--calls 40] [--out bench/results/x.json]
 *
 * A "call" is what an AS and a VS do for one number: store one sealed blob (POST /cps/{tn}/ppts) and
 * retrieve the number's list (GET /cps/{tn}/ppts), one after the other, through the client library's
 * CpsClient: directly, or with `relay` (each request a padded BHTTP message sealed to the gateway's
 * key, POSTed to the relay, which forwards it to the gateway, which runs it through the same app).
 * Each round runs `calls` direct calls and `calls` relayed ones, the order alternating per round;
 * every call uses a fresh number. Reported: the medians of the per-call latencies per round, and the
 * median over rounds of the relayed / direct ratio. The gateway's key configuration is fetched once
 * before the first round (a client caches it for its max-age).
 *
 * Locally every client is 127.0.0.1, and the relay limits each client address to 100 requests per
 * 10 s. So each relayed call announces its own made-up address in CF-Connecting-IP, which only the
 * local runtime (miniflare) keeps: the bench measures the relay's work, not its rate limit.
 */
import { parseArgs } from "node:util";
import { REPO_ROOT, startLocalServer } from "../src/dev/local-server.mjs";
import { localRelayToken, startLocalRelay } from "../src/dev/relay-server.mjs";
import { importBundle } from "../src/dev/ts-module.mjs";
import { positive } from "./lib/args.mjs";
import { machine } from "./lib/machine.mjs";
import { fmt, markdownTable, progressLog, writeJson } from "./lib/report.mjs";
import { median } from "./lib/stats.mjs";

const { values: flags } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    rounds: { type: "string", default: "5" },
    calls: { type: "string", default: "40" },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  console.log("node bench/ohttp.mjs -- [--rounds N] [--calls N] [--out FILE]");
  process.exit(0);
}
const ROUNDS = positive(flags, "rounds");
const CALLS = positive(flags, "calls");
const progress = progressLog("ohttp");

const m = await importBundle({
  name: "bench-ohttp",
  source: `
      export { CpsClient, OhttpRelay, canonicalTn } from "./src/client/index.ts";
      export { encodeEnvelope, generateRecipientKeyPair, sealPassport } from "./src/stir/envelope.ts";
      export { RFC8816_EXAMPLE_PASSPORT } from "./test/helpers/cps.ts";`,
});

/** A made-up client address per relayed call (see the header comment): 10.x.y.z. */
let addressCounter = 0;
function nextAddress() {
  addressCounter++;
  return `10.${(addressCounter >> 16) & 255}.${(addressCounter >> 8) & 255}.${addressCounter & 255}`;
}

/** One call: store one blob for a fresh number, then retrieve its list. Milliseconds. */
async function call(client, tn, blob) {
  const t = performance.now();
  await client.store(tn, blob);
  const list = await client.list(tn);
  const ms = performance.now() - t;
  if (list.length < 2) throw new Error("the list lacks the stored blob or the decoys");
  return ms;
}

async function main() {
  const started = Date.now();
  const env = machine();
  progress(`${env.nproc} x ${env.cpu}, Node ${env.node}, workerd ${env.workerd}; commit ${env.commit}`);
  const callee = await m.generateRecipientKeyPair();
  const blobs = [];
  for (let i = 0; i < 20; i++) {
    const tn = m.canonicalTn("15550900000");
    blobs.push(m.encodeEnvelope(await m.sealPassport(callee.publicKey, tn, m.RFC8816_EXAMPLE_PASSPORT)));
  }
  progress("starting wrangler dev for the CPS (gateway on) and for the relay...");
  // The gateway's relay check on, as in a deployment: the CPS lists the relay's token (OHTTP_RELAYS).
  const relayToken = localRelayToken();
  const cps = await startLocalServer({
    vars: { ALLOW_UNTOKENED_STORES: "true", OHTTP_RELAYS: relayToken.relays },
  });
  let relayServer;
  const rounds = [];
  try {
    relayServer = await startLocalRelay({ gateways: { cps: cps.url }, tokens: { cps: relayToken.token } });
    const relay = new m.OhttpRelay({
      url: relayServer.gatewayUrl(),
      fetch: (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set("cf-connecting-ip", nextAddress());
        return fetch(input, { ...init, headers });
      },
    });
    const clients = {
      direct: new m.CpsClient({ baseUrl: cps.url, storeRetries: 0 }),
      relayed: new m.CpsClient({ baseUrl: cps.url, relay, requireRelay: true, storeRetries: 0 }),
    };
    let n = 0;
    const number = () => m.canonicalTn(`1555091${String(n++).padStart(4, "0")}`);
    // Warm-up: both paths once (the relay's key configuration, isolates, Durable Objects).
    for (let i = 0; i < 5; i++) {
      await call(clients.direct, number(), blobs[0]);
      await call(clients.relayed, number(), blobs[0]);
    }
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ["direct", "relayed"] : ["relayed", "direct"];
      const ms = { direct: [], relayed: [] };
      for (const path of order) {
        for (let i = 0; i < CALLS; i++)
          ms[path].push(await call(clients[path], number(), blobs[i % blobs.length]));
      }
      const direct = median(ms.direct);
      const relayed = median(ms.relayed);
      rounds.push({ order, direct, relayed, ratio: relayed / direct, ms });
      progress(
        `round ${r + 1}/${ROUNDS}: direct ${fmt(direct, 1)} ms, relayed ${fmt(relayed, 1)} ms, ratio ${fmt(relayed / direct, 2)}`,
      );
    }
  } finally {
    await Promise.all([relayServer?.stop(), cps.stop()]);
  }

  const summary = {
    directMs: median(rounds.map((r) => r.direct)),
    relayedMs: median(rounds.map((r) => r.relayed)),
    ratio: median(rounds.map((r) => r.ratio)),
    ratioRange: [Math.min(...rounds.map((r) => r.ratio)), Math.max(...rounds.map((r) => r.ratio))],
  };
  const elapsed = (Date.now() - started) / 1000;
  console.log(
    `\nA call (store + retrieval of one number) through the OHTTP relay vs direct, wrangler dev (workerd ${env.workerd}) on ${env.nproc} x ${env.cpu}, Node ${env.node}`,
  );
  console.log(`medians of ${ROUNDS} interleaved rounds, ${CALLS} sequential calls per path per round\n`);
  console.log(
    markdownTable(
      ["path", "call p50 (ms)", "relayed / direct"],
      [
        ["direct", fmt(summary.directMs, 1), "1.00"],
        [
          "through the relay",
          fmt(summary.relayedMs, 1),
          `${fmt(summary.ratio, 2)} (rounds ${fmt(summary.ratioRange[0], 2)}-${fmt(summary.ratioRange[1], 2)})`,
        ],
      ],
      (c) => c >= 1,
    ),
  );
  const day = new Date().toISOString().slice(0, 10);
  const out = flags.out ?? `${REPO_ROOT}/bench/results/ohttp-${day}.json`;
  await writeJson(out, {
    date: new Date().toISOString(),
    command: `node bench/ohttp.mjs -- --rounds ${ROUNDS} --calls ${CALLS}`,
    machine: env,
    config: {
      rounds: ROUNDS,
      calls: CALLS,
      vars: { ALLOW_UNTOKENED_STORES: "true", OHTTP_RELAYS: "(one local relay)" },
    },
    summary,
    rounds: rounds.map(({ ms, ...rest }) => ({
      ...rest,
      p99: {
        direct: [...ms.direct].sort((a, b) => a - b)[Math.ceil(0.99 * ms.direct.length) - 1],
        relayed: [...ms.relayed].sort((a, b) => a - b)[Math.ceil(0.99 * ms.relayed.length) - 1],
      },
    })),
    elapsedSeconds: elapsed,
  });
  console.log(`\n${fmt(elapsed)} s in all; figures in ${out}`);
}

await main();
