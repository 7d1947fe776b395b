/** The facts about the machine and the tree that every benchmark result records beside its figures. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../src/dev/local-server.mjs";

/** CPUs, memory, Node, wrangler and workerd versions, and the commit (`+dirty` with uncommitted changes). */
export function machine() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "unknown";
  // The workerd that wrangler dev runs is wrangler's own dependency, not the top-level one.
  const fromWrangler = createRequire(join(REPO_ROOT, "node_modules/wrangler/package.json"));
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO_ROOT }).toString().trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: REPO_ROOT });
    if (dirty.length > 0) commit += "+dirty";
  } catch {
    // not a git checkout
  }
  return {
    nproc: cpus().length,
    cpu: model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    wrangler: JSON.parse(readFileSync(join(REPO_ROOT, "node_modules/wrangler/package.json"), "utf8")).version,
    workerd: fromWrangler("workerd/package.json").version,
    commit,
  };
}

/** The 1, 5 and 15 minute load averages, to two decimals. */
export const loadAverage = () => loadavg().map((x) => Math.round(x * 100) / 100);
