#!/usr/bin/env node
/**
 * The cost budget of one request from a workerd CPU profile of `npm run bench:peer -- --profile`:
 * every sample is charged to the deepest step of the CPS it lies in (the route's Durable Object call,
 * the block filing, the dummies, ...), walking up its stack; the rest is the runtime's own work.
 *
 *   node bench/peer/budget.mjs <profile.cpuprofile> [--requests 1000] [--process-ms 4.6]
 *
 * The bundle the runtime ran is read from `<profile>.bundle.js` (saved beside it by bench:peer).
 * Sampled time is wall time between samples, so on a busy machine it overstates CPU: `--process-ms`
 * (workerd's CPU per request, from the /proc figures of the same run) scales the steps to it.
 * BENCHMARKS.md "Cost budget of one call" is this script's output.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { bundleModules } from "../lib/cpu-profile.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { requests: { type: "string", default: "1000" }, "process-ms": { type: "string" } },
});
const file = positionals[0];
if (!file) {
  console.error("usage: node bench/peer/budget.mjs <profile.cpuprofile> [--requests N] [--process-ms MS]");
  process.exit(2);
}
const requests = Number(values.requests);
const profile = JSON.parse(readFileSync(file, "utf8"));
const bundleText = readFileSync(`${file}.bundle.js`, "utf8");
const moduleOf = bundleModules(bundleText);

/** The step a stack frame belongs to, or null to look further up the stack. */
function step(frame) {
  const fn = frame.functionName;
  const inBundle = /(^|\/)index\.js$/.test(frame.url);
  const mod = inBundle ? moduleOf(frame.lineNumber + 1) : frame.url;
  if (fn === "(garbage collector)") return "garbage collection";
  if (fn === "(program)") return "runtime outside JavaScript (HTTP, I/O, scheduling)";
  if (fn === "alarm" && mod.includes("durable-objects/")) return "expiry alarms";
  if (fn === "scheduleAlarm" || fn === "setAlarm") return "alarm scheduling (setAlarm)";
  if (
    /^(createTables|create\w+Tables|getAlarm|StreamingQueue|PassportQueue|BlockQueue|TokenLedger)$/.test(fn)
  )
    return "object start (constructor, schema)";
  if (fn === "add" && mod.includes("block-queue")) return "hot shard copy: BlockQueue insert";
  if (fn === "fileInBlock") return "hot shard copy: PassportQueue -> BlockQueue call";
  if (fn === "forward" || fn === "pushStored") return "push forward to a watched number's PassportQueue";
  if (/^(storeNumber|storeRow)$/.test(fn) || (fn === "store" && mod.includes("passport-queue")))
    return "store in the number's block (SQL)";
  if (/^(listNumberAt|getNumberAt|liveRows|liveRow|listAt|getAt)$/.test(fn))
    return "list in the number's block (SQL)";
  if (fn === "spend" && mod.includes("token-ledger")) return "TokenLedger spend (SQL)";
  if (mod.includes("metrics-hub")) return "metrics flush (MetricsHub)";
  if (mod.includes("dummies/") || mod.startsWith("@hpke") || /^(makeDecoy|x25519KeyPair|shuffle)$/.test(fn))
    return "dummies (schedule, seal, shuffle)";
  if (fn === "encodeEnvelope") return "answer encoding";
  if (mod.includes("http/storage-token") || mod.includes("tokens/") || mod.includes("storage-token"))
    return "storage-token checks (signatures, spend call)";
  if (mod.includes("routes/passports") || mod.includes("storage/objects"))
    return "route handler (incl. the Worker -> BlockQueue call)";
  if (mod.includes("http/metrics") || mod.includes("metrics/") || fn === "routePath")
    return "metrics middleware";
  if (mod.includes("http/middleware") || mod.includes("config")) return "middleware: no-store, guard, config";
  if (mod.includes("store-request") || mod.includes("http/body") || mod.includes("stir/"))
    return "request checks (media type, size, number, envelope)";
  if (mod === "hono") return "hono (router, context, Response)";
  return null;
}

const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfUs = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
}
const steps = new Map();
let total = 0;
for (const [id, us] of selfUs) {
  const leaf = nodes.get(id);
  if (leaf.callFrame.functionName === "(idle)") continue;
  total += us;
  let name = null;
  for (let cur = id; cur !== undefined && name === null; cur = parent.get(cur))
    name = step(nodes.get(cur).callFrame);
  name ??= leaf.callFrame.url ? "other JavaScript" : "runtime natives (HTTP, RPC plumbing)";
  steps.set(name, (steps.get(name) ?? 0) + us);
}
const sampled = total / 1000 / requests;
const scale = values["process-ms"] ? Number(values["process-ms"]) / sampled : 1;
console.log(
  `${file}: ${sampled.toFixed(2)} ms sampled per request${scale === 1 ? "" : `, scaled x${scale.toFixed(3)} to ${values["process-ms"]} ms of process CPU`}`,
);
console.log("| step | ms per request |\n| --- | ---: |");
for (const [name, us] of [...steps].sort((a, b) => b[1] - a[1]))
  console.log(`| ${name} | ${((us / 1000 / requests) * scale).toFixed(2)} |`);
console.log(`| **sum** | **${(sampled * scale).toFixed(2)}** |`);
