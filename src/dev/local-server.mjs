/**
 * Runs the CPS locally: `wrangler dev` on workerd with persisted Durable Object and KV state.
 * Shared by `npm start` (src/dev/start.mjs), the e2e tests and `npm run bench`.
 *
 * Plain Node ESM on purpose: it must run before anything is built. Types: local-server.d.mts.
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdtemp, open, rm, unlink } from "node:fs/promises";
import { createServer } from "node:net";
import { constants, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomDecoySecret, randomOhttpKeys } from "./issuer-key.mjs";

/** The repository root (this file is src/dev/local-server.mjs). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const WRANGLER_BIN = join(REPO_ROOT, "node_modules/wrangler/bin/wrangler.js");

/**
 * Environment for a quiet, offline `wrangler dev`:
 * - CLOUDFLARE_CF_FETCH_ENABLED=false: miniflare uses its placeholder `Request.cf` instead of fetching
 *   https://workers.cloudflare.com/cf.json, whose failure offline is logged as a warning with a stack.
 * - WRANGLER_SEND_METRICS=false: no telemetry.
 * - WRANGLER_HIDE_BANNER=true: the banner is where wrangler runs its npm update check (the only
 *   switch for that check), so hiding it also stops the registry lookup at every start.
 */
export function wranglerEnv(extra = {}) {
  return {
    ...process.env,
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_HIDE_BANNER: "true",
    ...extra,
  };
}

/** The address to poll for a listen address (a wildcard bind answers on loopback). */
export function baseUrl(host, port) {
  if (host === "0.0.0.0" || host === "*") return `http://127.0.0.1:${port}`;
  if (host === "::") return `http://[::1]:${port}`;
  return host.includes(":") ? `http://[${host}]:${port}` : `http://${host}:${port}`;
}

/** A TCP port that was free a moment ago (the OS picks it; we close it straight away). */
export function freePort(host = "127.0.0.1") {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (srv.address());
      srv.close(() => resolvePort(port));
    });
  });
}

/** Whether host:port can be bound right now (so a /health answer there would come from our server). */
export function portIsFree(host, port) {
  return new Promise((resolveFree) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolveFree(false));
    srv.listen(port, host, () => srv.close(() => resolveFree(true)));
  });
}

/**
 * Polls `GET {url}/health` until it answers 200, or rejects after `timeoutMs` or as soon as
 * `failed()` returns an error (e.g. the server process exited).
 */
export async function waitForHealth(url, { timeoutMs = 60_000, intervalMs = 150, failed = () => null } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const err = failed();
    if (err) throw err;
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url}/health did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * The `wrangler dev` arguments for a local server on host:port persisting to persistTo. `vars` go on
 * the command line (`--var`), where any local user can read them in `ps`: never a secret. Secrets go
 * in an env file (`writeEnvFile`, then `--env-file`).
 */
export function wranglerDevArgs({
  host,
  port,
  persistTo,
  vars = {},
  envFiles = [],
  config,
  main,
  extraArgs = [],
}) {
  const args = [WRANGLER_BIN, "dev", "--ip", host, "--port", String(port), "--persist-to", persistTo];
  // Given an entry, wrangler would look for its config from the entry's directory up (bench/ has
  // its own): without an explicit config, name the CPS's.
  if (main !== undefined) args.push(main);
  if (config !== undefined || main !== undefined) args.push("--config", config ?? "wrangler.toml");
  for (const file of envFiles) args.push("--env-file", file);
  for (const [key, value] of Object.entries(vars)) args.push("--var", `${key}:${value}`);
  return [...args, ...extraArgs];
}

/**
 * One dotenv line that wrangler (dotenv 16 + dotenv-expand 12) reads back as exactly `value`: quoted
 * so that newlines (PEM) and `#` survive, with `$` escaped so that nothing is expanded.
 */
function envFileLine(name, value) {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    throw new Error(`env file: bad variable name ${JSON.stringify(name)}`);
  const text = String(value).replace(/\r\n?/g, "\n").replaceAll("$", "\\$");
  const quote = !text.includes("'") ? "'" : !text.includes("`") ? "`" : null;
  // A closing quote after a backslash would read as escaped.
  if (quote === null || text.endsWith("\\")) throw new Error(`env file: cannot quote the value of ${name}`);
  return `${name}=${quote}${text}${quote}\n`;
}

/**
 * Writes `vars` as a dotenv file readable by this user only (mode 0600 from its creation on, so no
 * other user ever sees it readable): the way secrets reach `wrangler dev --env-file` instead of the
 * command line, where `ps` shows them to every local user.
 */
export async function writeEnvFile(file, vars) {
  const text = Object.entries(vars)
    .map(([name, value]) => envFileLine(name, value))
    .join("");
  await unlink(file).catch((err) => {
    if (err?.code !== "ENOENT") throw err;
  });
  const handle = await open(file, "wx", 0o600);
  try {
    await handle.chmod(0o600); // whatever the umask
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
  return file;
}

const LOG_TAIL_CHARS = 8_000;
const SELF = fileURLToPath(import.meta.url);
const SUPERVISE_FLAG = "--supervise";
/** Each live server's supervisor -> its env-file directory, removed with it. */
const live = new Map();
let exitHookInstalled = false;

/** If the parent dies without calling stop(), do not leave wrangler and workerd running. */
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const [child, varsDir] of live) {
      killGroup(child, "SIGKILL");
      rmSync(varsDir, { recursive: true, force: true });
    }
  });
}

function killGroup(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    // Negative pid: the whole process group (wrangler and the workerd it spawned).
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Starts `wrangler dev` for this repository and resolves once `/health` answers.
 *
 * @param {object} [options]
 * @param {number} [options.port] listen port; a free one when omitted
 * @param {string} [options.host] listen address (default 127.0.0.1)
 * @param {string} [options.persistTo] state directory; a fresh temp dir (removed on stop) when omitted
 * @param {Record<string, string>} [options.vars] Worker vars and secrets, passed in a 0600 env file
 *   (`--env-file`), never on the command line; for the CPS, CPS_ORIGIN defaults to the server's own
 *   loopback URL, DECOY_SECRET to a fresh random one and OHTTP_KEYS to one fresh gateway key
 *   (`OHTTP_KEYS: ""` turns the gateway off)
 * @param {string} [options.config] wrangler config, relative to the repository (default: the CPS's
 *   wrangler.toml); e.g. bench/wrangler.toml for the bench Worker
 * @param {string} [options.main] entry module in place of the config's `main`, relative to the
 *   repository; e.g. bench/baseline-worker/index.ts
 * @param {boolean} [options.quiet] keep wrangler's output to ourselves (default true); it is
 *   included in the error if the server fails to start
 * @param {string[]} [options.args] extra `wrangler dev` arguments
 * @param {Record<string, string>} [options.env] extra environment for the wrangler process (not the
 *   Worker's vars), e.g. NODE_EXTRA_CA_CERTS: a PEM file of CAs that miniflare reads at start and
 *   hands to workerd as trusted certificates for the Worker's outbound https fetches
 * @param {number} [options.timeoutMs] how long to wait for /health (default 60 s)
 */
export async function startLocalServer(options = {}) {
  try {
    return await startOnce(options);
  } catch (err) {
    // wrangler dev's source watcher can fire while it starts (seen once in a loaded CI run, with no
    // file written), and its restart then fails to bind the port its first runtime still holds:
    // start once more, on a fresh port, unless the caller chose the port.
    if (options.port !== undefined || !isRestartBindFailure(err.message)) throw err;
    return startOnce(options);
  }
}

/** wrangler's output of a start that restarted on a watcher event and then lost its own port. */
export function isRestartBindFailure(text) {
  return /changed, restarting/.test(text) && /Address already in use/.test(text);
}

async function startOnce(options) {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? (await freePort(host === "0.0.0.0" ? "127.0.0.1" : host));
  const ownsState = options.persistTo === undefined;
  const persistTo = options.persistTo ?? (await mkdtemp(join(tmpdir(), "cps-state-")));
  const quiet = options.quiet ?? true;
  const url = baseUrl(host, port);

  // The CPS refuses to serve without CPS_ORIGIN: a local server's origin is its own loopback URL.
  // A fresh OHTTP gateway key too (docs/ohttp.md), so the gateway is on; OHTTP_KEYS: "" turns it off.
  const defaults =
    options.config === undefined
      ? { CPS_ORIGIN: url, DECOY_SECRET: randomDecoySecret(), OHTTP_KEYS: randomOhttpKeys() }
      : {};
  const varsDir = await mkdtemp(join(tmpdir(), "cps-vars-"));
  const envFile = await writeEnvFile(join(varsDir, "worker.env"), { ...defaults, ...options.vars });
  const args = wranglerDevArgs({
    host,
    port,
    persistTo,
    config: options.config,
    main: options.main,
    envFiles: [envFile],
    extraArgs: ["--show-interactive-dev-session=false", ...(options.args ?? [])],
  });
  // detached: its own process group (supervisor, wrangler, workerd), so stop() reaches all of it and
  // a terminal Ctrl+C aimed at the test runner does not race our own shutdown. The supervisor holds
  // our end of its stdin: if this process dies without stop() (a killed test worker), it tears down,
  // and it removes the env file once wrangler has exited.
  const child = spawn(process.execPath, [SELF, SUPERVISE_FLAG, varsDir, ...args], {
    cwd: REPO_ROOT,
    env: wranglerEnv(options.env),
    detached: true,
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdin.on("error", () => {});
  live.set(child, varsDir);
  installExitHook();

  let tail = "";
  const onData = (chunk) => {
    tail = (tail + chunk.toString()).slice(-LOG_TAIL_CHARS);
    if (!quiet) process.stderr.write(chunk);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);

  let spawnError = null;
  child.on("error", (err) => {
    spawnError = err;
  });
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  exited.then(() => live.delete(child));

  let stopping = null;
  const stop = () => {
    stopping ??= (async () => {
      killGroup(child, "SIGTERM");
      const timer = setTimeout(() => killGroup(child, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
      // workerd may outlive wrangler by a moment; make sure nothing of the group remains.
      killGroup(child, "SIGKILL");
      await rm(varsDir, { recursive: true, force: true });
      if (ownsState) await rm(persistTo, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    await waitForHealth(url, {
      timeoutMs: options.timeoutMs ?? 60_000,
      failed: () => {
        if (spawnError) return spawnError;
        if (child.exitCode !== null || child.signalCode !== null) {
          return new Error(
            `wrangler dev exited (${child.exitCode ?? child.signalCode}) before ${url}/health answered`,
          );
        }
        return null;
      },
    });
  } catch (err) {
    await stop();
    throw new Error(`${err.message}\n--- wrangler output (tail) ---\n${tail}`, { cause: err });
  }

  return {
    url,
    port,
    persistTo,
    pid: child.pid,
    exited,
    output: () => tail,
    stop,
    kill: (signal = "SIGTERM") => killGroup(child, signal),
  };
}

/**
 * Supervisor mode (`node local-server.mjs --supervise <vars dir> <node args...>`), run by
 * startLocalServer as the leader of the server's process group: runs wrangler, exits with its code
 * after removing the vars dir (the secrets' env file), and kills the group when its stdin closes,
 * which happens when the process that started it is gone, even by SIGKILL, where no exit hook of
 * ours could run.
 */
function supervise(varsDir, args) {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"] });
  let tornDown = false;
  const teardown = () => {
    if (tornDown) return;
    tornDown = true;
    const killOwnGroup = (signal) => {
      try {
        process.kill(-process.pid, signal);
      } catch {
        child.kill(signal);
      }
    };
    killOwnGroup("SIGTERM");
    setTimeout(() => killOwnGroup("SIGKILL"), 5_000).unref();
  };
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    });
  }
  process.stdin.on("end", teardown);
  process.stdin.on("error", teardown);
  process.stdin.resume();
  child.on("exit", (code, signal) => {
    rmSync(varsDir, { recursive: true, force: true });
    process.exit(code ?? 128 + (constants.signals[signal] ?? 0));
  });
}

if (process.argv[1] === SELF && process.argv[2] === SUPERVISE_FLAG) {
  supervise(process.argv[3], process.argv.slice(4));
}
