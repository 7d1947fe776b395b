#!/usr/bin/env node
/**
 * Push and block benchmark (RFC 8816 §5.5, §6.2; docs/push-and-blocks.md) over real HTTP and
 * WebSockets against `wrangler dev` on workerd, rounds of every scenario in turn; each ratio compares
 * two arms measured in the same round. (The index-cost scenario, a CPS filing copies into its block
 * index against one that did not, ended when a number's blobs moved into the block itself: there is
 * no copy left to cost.)
 *
 *   node bench/push.mjs [--rounds 5] [--stores 200] [--concurrency 16] [--direct] [--pin] [--out FILE]
 *                       [--only delivery,throughput,block] [--delivery-gap 300] [--rps]
 *
 * `wrangler dev` puts a proxy Worker in front of the app that relays every request and every
 * WebSocket message in JavaScript; production has no such hop. `--direct` (Linux, needs `ss`) finds
 * the app's own workerd socket in the server's process group and talks to it instead.
 * `--rps` (with --pin; Linux, root) steers loopback receive processing to CPU 1 for the run (Receive
 * Packet Steering on `lo`) and restores it after. On loopback the sending CPU otherwise also does the
 * receiving side's TCP work, so the subscribers' receiving would be billed to the CPS; in production
 * it happens on their machines. It moves the CPS's receiving of requests to CPU 1 too, in both arms.
 * `--pin` (Linux, needs `taskset`) puts the servers' process groups on CPU 0 and this process (the
 * load and the 100 subscribers) on CPU 1, so that on a 2-core machine the subscribers' reading does
 * not take CPU from the CPS: with subscribers on other machines, as in production, it would not.
 *
 * Scenarios (medians over rounds of each round's figure):
 *   delivery-S    S = 1, 10, 100 subscribers on one number; stores one at a time, each DELIVERY_GAP_MS
 *                 after the last delivery (isolated stores, as calls to one number are); latency from
 *                 the start of the POST to the frame's arrival at each subscriber (p50, p99 over all).
 *   throughput    stores at --concurrency to a number with 100 subscribers vs to one with none, on A;
 *                 ratio = with / without (target >= 0.8). Once with subscribers reading, once with
 *                 them paused during the stores (slow readers; no client CPU), all frames checked.
 *                 With subscribers reading, also the store-to-delivery latency under this load
 *                 (frames then wait for the object's send budget: src/push/batch.ts PUSH_SENDS_PER_S).
 *                 Beside the rates: the server's own CPU time per store in each arm (/proc, all its
 *                 processes), and cpuRatio = none / hundred, the rate ratio a CPU-bound server would
 *                 reach, which the load generator and subscribers sharing the machine cannot disturb.
 *   block-get     GET /cps/blocks/{block}/ppts for a block holding 100 live blobs (sequential, p50/p99),
 *                 beside GET /cps/{tn}/ppts of one number holding 100 and a fan-out GET over the 100
 *                 numbers that hold them (a lower bound of what a block read without the index costs).
 *
 * Blobs are random bytes of the envelope length: the CPS never opens them, so sealing adds nothing.
 * Subscribers are bare WebSocket clients on raw TCP sockets (frames cut out, no JSON parsing), so
 * the client side takes as little of the shared CPU as possible.
 */
import { execSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { freePort, startLocalServer } from "../src/dev/local-server.mjs";
import { positive } from "./lib/args.mjs";
import { closedLoop, sleep } from "./lib/closed-loop.mjs";
import { machine } from "./lib/machine.mjs";
import { resultFile, writeJson } from "./lib/report.mjs";
import { median, stats } from "./lib/stats.mjs";

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    stores: { type: "string", default: "200" },
    concurrency: { type: "string", default: "16" },
    out: { type: "string" },
    direct: { type: "boolean", default: false },
    pin: { type: "boolean", default: false },
    only: { type: "string", default: "delivery,throughput,block" },
    "delivery-gap": { type: "string", default: "300" },
    rps: { type: "boolean", default: false },
  },
});
const ROUNDS = positive(flags, "rounds");
const STORES = positive(flags, "stores");
const CONCURRENCY = positive(flags, "concurrency");
const ENVELOPE_LENGTH = 1072; // src/stir/envelope.ts: 32 (enc) + 1024 (padded) + 16 (tag)
const SUBSCRIBER_COUNTS = [1, 10, 100];
const DELIVERY_STORES = 50;
/** Pause between delivery stores: by default more than the longest pacing gap (src/push/batch.ts MAX_PACE_MS). */
const DELIVERY_GAP_MS = Number(flags["delivery-gap"]);
const SCENARIOS = new Set(flags.only.split(","));
for (const s of SCENARIOS) {
  if (!["delivery", "throughput", "block"].includes(s)) throw new Error(`--only: unknown scenario ${s}`);
}
if (!(DELIVERY_GAP_MS >= 0)) throw new Error("--delivery-gap: a number of milliseconds >= 0");
if (flags.rps && !flags.pin) throw new Error("--rps needs --pin");
const BLOCK_GETS = 50;

const log = (...a) => console.error(...a);
const randomBlob = () =>
  Buffer.from(crypto.getRandomValues(new Uint8Array(ENVELOPE_LENGTH))).toString("base64url");
const digits = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b % 10).join("");

/** `wrangler dev` answers 503 "worker restarted mid-request" now and then on a crowded machine. */
const restarts = { count: 0 };

async function store(url, tn, blob = randomBlob()) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${url}/cps/${tn}/ppts`, {
      method: "POST",
      headers: { "Content-Type": "application/passport" },
      body: blob,
    });
    const text = await res.text();
    if (res.status === 201) return;
    if (res.status === 503 && attempt < 3) {
      restarts.count++;
      continue;
    }
    throw new Error(`store ${tn}: ${res.status} ${text.slice(0, 300)}`);
  }
}

/**
 * A bare WebSocket subscriber on a raw TCP socket: handshake, then server frames (unmasked) are cut
 * out of the byte stream and handed to `onFrame` with their arrival time. Much cheaper per frame than
 * a full client, which matters on a small machine where the subscribers share the CPU with the CPS.
 */
function rawSubscriber(url, path, onFrame) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const sock = connect(Number(u.port), u.hostname);
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let open = false;
    sock.on("connect", () =>
      sock.write(
        `GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    sock.on("data", (chunk) => {
      const at = performance.now();
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (!open) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        if (!buf.subarray(0, 16).toString().includes(" 101 ")) {
          reject(new Error(`subscribe refused: ${buf.subarray(0, 60).toString()}`));
          sock.destroy();
          return;
        }
        open = true;
        buf = buf.subarray(end + 4);
        resolve(sock);
      }
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) return;
        if ((buf[0] & 0x0f) === 1) onFrame(buf.subarray(off, off + len), at);
        buf = buf.subarray(off + len);
      }
    });
    sock.on("error", reject);
  });
}

const BLOB_KEY = Buffer.from('"blob":"');

/**
 * Opens `count` subscribers; the first `record` of them record each frame's arrival time by its
 * blob's first 40 chars (all by default; fewer keeps the load generator's own CPU down when it shares
 * a core with them). A message may carry several frames, one per line: each is counted.
 */
async function subscribers(url, path, count, { record = count } = {}) {
  const arrivals = new Map(); // key -> [times]
  let frames = 0;
  let messages = 0;
  let opened = 0;
  const onFrameOf = (recording) => (payload, at) => {
    messages++;
    for (let i = payload.indexOf(BLOB_KEY); i >= 0; i = payload.indexOf(BLOB_KEY, i + 1)) {
      frames++;
      if (!recording) continue;
      const start = i + BLOB_KEY.length;
      const key = payload.subarray(start, start + 40).toString();
      const list = arrivals.get(key) ?? [];
      list.push(at);
      arrivals.set(key, list);
    }
  };
  const sockets = [];
  for (let i = 0; i < count; i += 10) {
    sockets.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(10, count - i) }, () =>
          rawSubscriber(url, path, onFrameOf(opened++ < record)),
        ),
      )),
    );
  }
  // Every subscriber is greeted with a dummy: wait for all greetings before measuring.
  const deadline = Date.now() + 30_000;
  while (frames < count && Date.now() < deadline) await sleep(5);
  return {
    arrivals,
    frames: () => frames,
    messages: () => messages,
    pause: () => {
      for (const sock of sockets) sock.pause();
    },
    resume: () => {
      for (const sock of sockets) sock.resume();
    },
    close: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

/** Runs `count` requests at CONCURRENCY; returns stores/s and latency percentiles. */
async function load(count, fn) {
  const latencies = [];
  const seconds = await closedLoop(count, CONCURRENCY, async (i) => {
    const t0 = performance.now();
    await fn(i);
    latencies.push(performance.now() - t0);
  });
  return { rps: count / seconds, ...stats(latencies) };
}

async function delivery(url, subs) {
  const tn = `1555${digits(7)}`;
  const s = await subscribers(url, `/cps/${tn}/subscribe`, subs);
  const latencies = [];
  for (let i = 0; i < DELIVERY_STORES; i++) {
    const blob = randomBlob();
    const key = blob.slice(0, 40);
    const t0 = performance.now();
    await store(url, tn, blob);
    const deadline = Date.now() + 10_000;
    while ((s.arrivals.get(key)?.length ?? 0) < subs) {
      if (Date.now() > deadline) throw new Error(`delivery to ${subs} subscribers timed out`);
      await new Promise((r) => setImmediate(r));
    }
    for (const at of s.arrivals.get(key)) latencies.push(at - t0);
    await sleep(DELIVERY_GAP_MS);
  }
  s.close();
  return stats(latencies);
}

/**
 * Store throughput with 100 subscribers on the number vs none, halves interleaved. `paused`: the
 * subscribers stop reading during the stores (slow subscribers; and no client CPU taken from the
 * CPS on this shared machine), then resume, and every frame must still arrive.
 */
async function throughput(url, pids, { paused = false } = {}) {
  const withTn = `1666${digits(7)}`;
  const withoutTn = `1666${digits(7)}`;
  // 10 reading subscribers record arrivals: store-to-delivery under this load, pacing included.
  const s = await subscribers(url, `/cps/${withTn}/subscribe`, 100, { record: paused ? 0 : 10 });
  const started = new Map(); // blob key -> start of its POST
  const timedStore = (tn) => {
    const blob = randomBlob();
    if (tn === withTn && !paused) started.set(blob.slice(0, 40), performance.now());
    return store(url, tn, blob);
  };
  if (paused) s.pause();
  const half = Math.floor(STORES / 2);
  // The server's own CPU time per store (user + system, all its processes), beside the rate: a
  // figure the load generator and the subscribers on the same machine cannot disturb.
  // And this process's (load generator and subscribers): if it nears 1 / rate, the client, not the
  // CPS, sets the pace.
  const cpu = { none: { user: 0, system: 0, client: 0 }, hundred: { user: 0, system: 0, client: 0 } };
  const arm = async (key, tn) => {
    const t0 = cpuMs(pids);
    const c0 = process.cpuUsage();
    const r = await load(half, () => timedStore(tn));
    const c1 = process.cpuUsage(c0);
    const t1 = cpuMs(pids);
    cpu[key].user += t1.user - t0.user;
    cpu[key].system += t1.system - t0.system;
    cpu[key].client += (c1.user + c1.system) / 1000;
    return r;
  };
  const a1 = await arm("none", withoutTn);
  const b1 = await arm("hundred", withTn);
  const b2 = await arm("hundred", withTn);
  const a2 = await arm("none", withoutTn);
  if (paused) s.resume();
  // Every store reached every subscriber (plus its greeting), or the figure means nothing.
  const want = 100 * (2 * half + 1);
  const deadline = Date.now() + 60_000;
  while (s.frames() < want && Date.now() < deadline) await sleep(10);
  s.close();
  if (s.frames() < want) throw new Error(`subscribers got ${s.frames()} frames, want ${want}`);
  const none = (a1.rps + a2.rps) / 2;
  const hundred = (b1.rps + b2.rps) / 2;
  const loaded = [];
  for (const [key, t0] of started) for (const at of s.arrivals.get(key) ?? []) loaded.push(at - t0);
  const per = (c) => ({ user: c.user / (2 * half), system: c.system / (2 * half) });
  const cpuPerStore = {
    none: per(cpu.none).user + per(cpu.none).system,
    hundred: per(cpu.hundred).user + per(cpu.hundred).system,
    noneUser: per(cpu.none).user,
    hundredUser: per(cpu.hundred).user,
    clientNone: cpu.none.client / (2 * half),
    clientHundred: cpu.hundred.client / (2 * half),
  };
  return {
    none,
    hundred,
    ratio: hundred / none,
    framesPerMessage: s.frames() / s.messages(),
    deliveryUnderLoad: paused ? null : stats(loaded),
    cpuMsPerStore: cpuPerStore,
    cpuRatio: cpuPerStore.none / cpuPerStore.hundred,
  };
}

const TICK_MS = 1000 / Number(execSync("getconf CLK_TCK").toString().trim() || 100);

/** CPU time (ms) used so far by the given processes (Linux /proc): user, system, and their sum. */
function cpuMs(pids) {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      user += Number(fields[11]); // utime
      system += Number(fields[12]); // stime
    } catch {
      // gone
    }
  }
  return { user: user * TICK_MS, system: system * TICK_MS, total: (user + system) * TICK_MS };
}

async function timedGets(count, url) {
  const latencies = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const res = await fetch(url);
    const body = await res.json();
    if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
    latencies.push(performance.now() - t0);
    if (i === 0) timedGets.last = body.passports.length;
  }
  return stats(latencies);
}

async function blockGet(url) {
  const prefix = `1888${digits(3)}`;
  const numbers = new Set();
  while (numbers.size < 100) numbers.add(prefix + digits(4));
  const one = `1889${digits(7)}`;
  await Promise.all([...numbers].map((tn) => store(url, tn)));
  for (let i = 0; i < 100; i++) await store(url, one);
  const block = await timedGets(BLOCK_GETS, `${url}/cps/blocks/${prefix}xxxx/ppts`);
  const blockItems = timedGets.last;
  const number = await timedGets(BLOCK_GETS, `${url}/cps/${one}/ppts`);
  const fanout = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    const list = [...numbers];
    await closedLoop(list.length, CONCURRENCY, async (i) => {
      await (await fetch(`${url}/cps/${list[i]}/ppts`)).arrayBuffer();
    });
    fanout.push(performance.now() - t0);
  }
  return { block, blockItems, number, fanout100: stats(fanout) };
}

/** The app's own listening socket (not the dev proxy): the port in the server's process group that
 * answers /health and is not the proxy's. */
/** Pids of the server's process group (wrangler and its workerd). */
function groupPids(srv) {
  const pgid = execSync(`ps -o pgid= -p ${srv.pid}`).toString().trim();
  return new Set(
    execSync("ps -eo pid=,pgid=")
      .toString()
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter(([, g]) => g === pgid)
      .map(([p]) => p),
  );
}

const RPS_FILE = "/sys/class/net/lo/queues/rx-0/rps_cpus";

/** --rps: loopback receive processing on CPU 1 (mask 2); returns a function that restores it. */
function steerLoopbackReceive() {
  const before = readFileSync(RPS_FILE, "utf8").trim();
  writeFileSync(RPS_FILE, "2");
  return () => writeFileSync(RPS_FILE, before);
}

/** --pin: every thread of the servers on CPU 0, every thread of this process on CPU 1. */
function pinCpus(servers) {
  for (const srv of servers) for (const pid of groupPids(srv)) execSync(`taskset -a -p -c 0 ${pid}`);
  execSync(`taskset -a -p -c 1 ${process.pid}`);
}

async function directUrl(srv) {
  const pids = groupPids(srv);
  for (const line of execSync("ss -ltnpH").toString().split("\n")) {
    const m = /127\.0\.0\.1:(\d+).*pid=(\d+)/.exec(line);
    if (!m || !pids.has(m[2]) || Number(m[1]) === srv.port) continue;
    try {
      const res = await fetch(`http://127.0.0.1:${m[1]}/health`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200 && (await res.text()).includes('"ok"')) return `http://127.0.0.1:${m[1]}`;
    } catch {
      // not an HTTP listener
    }
  }
  throw new Error("--direct: could not find the app's own socket");
}

async function main() {
  const vars = { ALLOW_UNTOKENED_STORES: "true", MAX_LIVE_PER_NUMBER: "1000000" };
  log("starting the local server...");
  // One at a time, each with its own inspector port (two wrangler devs would both want 9229).
  const server = async (main) =>
    startLocalServer({ vars, main, args: ["--inspector-port", String(await freePort())] });
  const a = await server();
  if (flags.pin) {
    pinCpus([a]);
    log("pinned: servers on CPU 0, load and subscribers on CPU 1");
  }
  const restoreRps = flags.rps ? steerLoopbackReceive() : () => {};
  if (flags.rps) log("loopback receive processing steered to CPU 1");
  const aPids = groupPids(a);
  const urlOf = async (srv) => (flags.direct ? await directUrl(srv) : srv.url);
  const aUrl = await urlOf(a);
  log(`CPS at ${aUrl}${flags.direct ? " (direct, bypassing the dev proxy)" : ""}`);
  const rounds = [];
  const failedRounds = [];
  try {
    // Warm-up: isolates, DO classes, JIT.
    await load(100, () => store(aUrl, `1999${digits(7)}`));
    await delivery(aUrl, 1);
    for (let r = 0, failures = 0; r < ROUNDS; ) {
      try {
        const round = {};
        if (SCENARIOS.has("delivery")) {
          round.delivery = {};
          for (const s of SUBSCRIBER_COUNTS) round.delivery[s] = await delivery(aUrl, s);
        }
        if (SCENARIOS.has("throughput")) {
          round.throughput = await throughput(aUrl, aPids);
          round.throughputPaused = await throughput(aUrl, aPids, { paused: true });
        }
        if (SCENARIOS.has("block")) round.blockGet = await blockGet(aUrl);
        rounds.push(round);
        log(`round ${++r}/${ROUNDS}:`, JSON.stringify(round));
      } catch (err) {
        // A worker restart drops the subscribers' sockets: the round is discarded and run again.
        if (++failures > 3) throw err;
        failedRounds.push(String(err).slice(0, 200));
        log(`round discarded: ${err}`);
      }
    }
  } finally {
    restoreRps();
    await a.stop();
  }
  const m = (f) => Number(median(rounds.map(f)).toFixed(2));
  const summary = {};
  if (SCENARIOS.has("delivery")) {
    summary.delivery = Object.fromEntries(
      SUBSCRIBER_COUNTS.map((s) => [
        s,
        { p50Ms: m((r) => r.delivery[s].p50), p99Ms: m((r) => r.delivery[s].p99) },
      ]),
    );
  }
  // The same figures for both throughput tests; the reading one also has the target and the
  // store-to-delivery under load.
  const throughputSummary = (pick, reading) => ({
    noneStoresPerS: m((r) => pick(r).none),
    hundredSubsStoresPerS: m((r) => pick(r).hundred),
    ratio: m((r) => pick(r).ratio),
    ...(reading ? { target: 0.8 } : {}),
    framesPerMessage: m((r) => pick(r).framesPerMessage),
    ...(reading
      ? {
          deliveryUnderLoadP50Ms: m((r) => pick(r).deliveryUnderLoad.p50),
          deliveryUnderLoadP99Ms: m((r) => pick(r).deliveryUnderLoad.p99),
        }
      : {}),
    serverCpuMsPerStoreNone: m((r) => pick(r).cpuMsPerStore.none),
    serverCpuMsPerStoreHundred: m((r) => pick(r).cpuMsPerStore.hundred),
    serverUserCpuMsPerStoreNone: m((r) => pick(r).cpuMsPerStore.noneUser),
    serverUserCpuMsPerStoreHundred: m((r) => pick(r).cpuMsPerStore.hundredUser),
    clientCpuMsPerStoreNone: m((r) => pick(r).cpuMsPerStore.clientNone),
    clientCpuMsPerStoreHundred: m((r) => pick(r).cpuMsPerStore.clientHundred),
    cpuRatio: m((r) => pick(r).cpuRatio),
  });
  if (SCENARIOS.has("throughput")) {
    summary.throughput = throughputSummary((r) => r.throughput, true);
    summary.throughputPausedSubscribers = throughputSummary((r) => r.throughputPaused, false);
  }
  if (SCENARIOS.has("block")) {
    summary.blockGet = {
      items: m((r) => r.blockGet.blockItems),
      blockP50Ms: m((r) => r.blockGet.block.p50),
      blockP99Ms: m((r) => r.blockGet.block.p99),
      oneNumber100P50Ms: m((r) => r.blockGet.number.p50),
      fanout100NumbersP50Ms: m((r) => r.blockGet.fanout100.p50),
    };
  }
  const result = {
    date: new Date().toISOString(),
    restartedStores: restarts.count,
    failedRounds,
    loadAverage: loadavg(),
    via: flags.direct ? "direct" : "wrangler dev proxy",
    pinned: flags.pin,
    loopbackReceiveOnCpu1: flags.rps,
    rounds: ROUNDS,
    stores: STORES,
    concurrency: CONCURRENCY,
    scenarios: [...SCENARIOS],
    deliveryGapMs: DELIVERY_GAP_MS,
    machine: machine(),
    summary,
    raw: rounds,
  };
  const out = flags.out ?? resultFile("push", result.date);
  await writeJson(out, result);
  console.log(JSON.stringify(summary, null, 2));
  log(`written ${out}`);
}

await main();
