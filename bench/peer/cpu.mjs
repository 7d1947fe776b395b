/**
 * Server CPU time from /proc (Linux), for `npm run bench:peer`: the CPU a process tree has used, so a
 * system's cost is measured the same way whatever it runs (node + workerd, or uvicorn + redis).
 *
 * A tree is a root pid and every live descendant. Each process counts utime + stime (its own threads)
 * plus cutime + cstime (children it has waited for: a redis BGSAVE fork, a uvicorn worker that was
 * replaced), so CPU of processes that exited inside the tree is not lost; a live child is never in its
 * parent's cutime, so nothing counts twice.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticksPerSecond;
/** The kernel's clock ticks per second (`getconf CLK_TCK`, 100 on Linux almost everywhere). */
function clockTicks() {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Whether this machine has /proc/<pid>/stat as Linux writes it. */
export function procAvailable() {
  try {
    readFileSync(`/proc/${process.pid}/stat`, "utf8");
    return true;
  } catch {
    return false;
  }
}

/** pid, ppid, name and CPU ticks of one process, from /proc/<pid>/stat; null if it is gone. */
function readStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // The name is in parentheses and may hold spaces or parentheses: the fields start after the last ")".
  const close = text.lastIndexOf(")");
  const name = text.slice(text.indexOf("(") + 1, close);
  const f = text
    .slice(close + 2)
    .trim()
    .split(" ");
  // f[0] is field 3 (state): utime is field 14 -> f[11], stime f[12], cutime f[13], cstime f[14].
  const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  return { pid, ppid: Number(f[1]), name, ticks };
}

/** A short label of a process: its name, and for node the script it runs (wrangler, start.mjs, ...). */
function label(pid, name) {
  if (name === "workerd") {
    // `npm start -- --watch` (wrangler dev) runs two: its proxy Worker, which takes the requests on the
    // chosen port, and the CPS behind it, on a port of the runtime's choosing (`entry=...:0`). The
    // default `npm start` (Miniflare's API) runs one, the CPS; system `bare` one, the bare baseline.
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      const parent = readStat(pid)?.ppid;
      const underWrangler = readFileSync(`/proc/${parent}/cmdline`, "utf8").includes("wrangler-dist/cli.js");
      if (!underWrangler || argv.some((a) => /^--socket-addr=entry=.*:0$/.test(a)))
        return "workerd (the served Worker)";
      return "workerd (wrangler's proxy)";
    } catch {
      // gone
    }
    return name;
  }
  if (name !== "node" && name !== "python3" && !name.startsWith("python")) return name;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const script = argv.slice(1).find((a) => !a.startsWith("-"));
    if (name === "node" && script) return `node ${script.split("/").slice(-2).join("/")}`;
    if (argv.includes("-m")) return `${name} -m ${argv[argv.indexOf("-m") + 1]}`;
    // uvicorn --workers N starts its workers with multiprocessing's spawn (python -c "...spawn_main...").
    if (argv.some((a) => a.includes("spawn_main"))) return `${name} worker (multiprocessing spawn)`;
    if (argv.some((a) => a.includes("resource_tracker"))) return `${name} (multiprocessing resource tracker)`;
  } catch {
    // gone
  }
  return name;
}

/**
 * The CPU (ms) used so far by each tree in `roots` (name -> root pid), and per process label within
 * it (e.g. "workerd", "node wrangler/bin/wrangler.js", "redis-server"). One scan of /proc for all.
 */
export function sampleTrees(roots) {
  const stats = new Map();
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const s = readStat(Number(entry));
    if (!s) continue;
    stats.set(s.pid, s);
    if (!children.has(s.ppid)) children.set(s.ppid, []);
    children.get(s.ppid).push(s.pid);
  }
  const msPerTick = 1000 / clockTicks();
  const out = {};
  for (const [tree, rootPids] of Object.entries(roots)) {
    let total = 0;
    const byProcess = {};
    const stack = [...rootPids];
    const seen = new Set();
    while (stack.length > 0) {
      const pid = stack.pop();
      if (seen.has(pid)) continue;
      seen.add(pid);
      const s = stats.get(pid);
      if (!s) continue;
      const ms = s.ticks * msPerTick;
      total += ms;
      const key = label(pid, s.name);
      byProcess[key] = (byProcess[key] ?? 0) + ms;
      stack.push(...(children.get(pid) ?? []));
    }
    out[tree] = { ms: total, byProcess };
  }
  return out;
}

/** after - before, tree by tree and process label by label (ms). */
export function cpuDelta(before, after) {
  const out = {};
  for (const [tree, a] of Object.entries(after)) {
    const b = before[tree] ?? { ms: 0, byProcess: {} };
    const byProcess = {};
    for (const [k, v] of Object.entries(a.byProcess)) byProcess[k] = v - (b.byProcess[k] ?? 0);
    out[tree] = { ms: a.ms - b.ms, byProcess };
  }
  return out;
}
