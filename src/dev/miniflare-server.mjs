/**
 * How `npm start` serves the CPS: on workerd through Miniflare's API, with the bindings wrangler.toml
 * declares (read by wrangler's own `unstable_getMiniflareWorkerOptions`, so the two cannot drift) and
 * the Miniflare that wrangler itself runs (resolved from wrangler's install, so the runtime is the one
 * `wrangler dev` and the e2e tests use). Unlike `wrangler dev` there is no proxy Worker and no
 * log relay between a client and the CPS: requests reach the CPS's workerd directly, and it prints
 * nothing per request. That path cost about 40 % of the CPU of a local call (issue 20, BENCHMARKS.md).
 *
 * State is persisted in the layout `wrangler dev --persist-to <dir>` uses (`<dir>/v3`), so either way
 * of starting sees the other's stored data. The secrets go to workerd inside Miniflare's
 * configuration, never on a command line.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { build } from "esbuild";
import { REPO_ROOT } from "./local-server.mjs";

/**
 * Where this process bundles the Worker (git-ignored with the rest of .wrangler/): its own directory,
 * so that servers started side by side never load each other's half-written bundle. Removed at exit.
 */
const BUNDLE_DIR = join(REPO_ROOT, ".wrangler", "tmp", `npm-start-${process.pid}`);

/** wrangler's own Miniflare (the version it pins, matched to its workerd). */
function wranglersMiniflare() {
  const fromWrangler = createRequire(createRequire(import.meta.url).resolve("wrangler/package.json"));
  return fromWrangler("miniflare");
}

/**
 * Bundles `entry` (the CPS: src/index.ts) as `wrangler dev` does (esbuild, the `workerd`/`worker`/
 * `browser` conditions, ES modules), after running wrangler.toml's `[build]` (the web pages the
 * assets binding serves) if `web`.
 */
async function bundleWorker(entry, web) {
  if (web) {
    const built = spawnSync(process.execPath, [join(REPO_ROOT, "src/dev/build-web.mjs")], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "inherit", "inherit"],
    });
    if (built.status !== 0) throw new Error(`building the web pages failed (exit ${built.status})`);
  }
  mkdirSync(BUNDLE_DIR, { recursive: true });
  process.on("exit", () => rmSync(BUNDLE_DIR, { recursive: true, force: true }));
  const outfile = join(BUNDLE_DIR, "index.js");
  await build({
    entryPoints: [join(REPO_ROOT, entry)],
    absWorkingDir: REPO_ROOT,
    bundle: true,
    format: "esm",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external: ["cloudflare:*", "node:*"],
    outfile,
    sourcemap: true,
    logLevel: "warning",
  });
  return outfile;
}

/**
 * Starts the CPS; resolves to { url, dispose, configVars } (configVars: wrangler.toml's vars for the env).
 * The Worker's bindings are wrangler.toml's (for `envName`) with `bindings` over its vars. `bindings` are added to wrangler.toml's vars (and
 * win over them); `onOutput(stdout, stderr)` receives workerd's output streams (the Worker's logs).
 * `worker` serves another Worker of this repository the same way (bench/peer/bare-server.mjs: the
 * bench's bare Durable Object baseline): its config and entry, relative to the repository, and
 * whether to build the web pages first.
 */
export async function serveWithMiniflare({
  host,
  port,
  persistTo,
  envName,
  bindings,
  inspectorPort,
  onOutput,
  worker = { config: "wrangler.toml", entry: "src/index.ts", web: true },
}) {
  const scriptPath = await bundleWorker(worker.entry, worker.web);
  const { unstable_getMiniflareWorkerOptions, unstable_readConfig } = await import("wrangler");
  const config = unstable_readConfig({ config: join(REPO_ROOT, worker.config), env: envName });
  const { workerOptions } = unstable_getMiniflareWorkerOptions(config, envName);
  const { Miniflare } = wranglersMiniflare();
  const mf = new Miniflare({
    host,
    port,
    ...(inspectorPort !== undefined ? { inspectorPort } : {}),
    defaultPersistRoot: join(persistTo, "v3"),
    handleRuntimeStdio: onOutput,
    workers: [
      {
        ...workerOptions,
        name: config.name,
        // Listed, not discovered: the bundle's guarded `import("crypto")` fallbacks are never reached
        // on workerd, and Miniflare would refuse a module it cannot resolve.
        modules: [{ type: "ESModule", path: scriptPath }],
        // wrangler.toml's vars, then the caller's: not wrangler's own reading of .dev.vars or .env
        // (start.mjs reads .dev.vars itself, as `--watch` has wrangler do, and never .env).
        bindings: { ...config.vars, ...bindings },
      },
    ],
  });
  const url = await mf.ready;
  return {
    url: url.href.replace(/\/$/, ""),
    dispose: () => mf.dispose(),
    configVars: { ...config.vars },
  };
}
