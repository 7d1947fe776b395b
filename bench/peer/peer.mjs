/**
 * The peer of `npm run bench:peer`: the ATIS-1000096 baseline CPS of the research prototype
 * lokingdav/jodi (`jodi/prototype/stirshaken/cps_server.py`, FastAPI + uvicorn + Redis), set up from a
 * copy the user fetched, with Debian's packages only, and nothing changed in its code. Every step and
 * why is in bench/peer/README.md; this file does them:
 *
 * 1. checks: /usr/bin/python3 imports what the server's modules import, redis-server exists, the copy
 *    holds the server (a refusal names the missing Debian packages or the missing file: SetupError);
 * 2. copies the peer into a work directory (a checkout: its files; a git dir, even a bare mirror: the
 *    blobs of HEAD, read with `git cat-file`, skipping the few a partial mirror lacks), never writing
 *    into the user's copy;
 * 3. makes the peer's certificates with its own setup script (`python3 -m jodi.prototype.scripts.setup
 *    --certs`, once per work directory: about 15 s) into <work>/conf/certs.json;
 * 4. per server: its own redis-server (defaults, as the `redis` container image runs it) and uvicorn
 *    with N workers, configured through the environment variables its jodi/config.py reads.
 */
import { execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, waitForHealth } from "../../src/dev/local-server.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
/** Import-only stand-ins for the two native libraries Debian does not package (README.md). */
export const STANDINS_DIR = join(HERE, "python");
export const SERVER_MODULE = "jodi/prototype/stirshaken/cps_server.py";
export const SERVER_APP = "jodi.prototype.stirshaken.cps_server:app";

/** What the server's import chain needs from outside the standard library, and the Debian package of each. */
export const PYTHON_MODULES = {
  fastapi: "python3-fastapi",
  starlette: "python3-starlette",
  pydantic: "python3-pydantic",
  uvicorn: "python3-uvicorn",
  uvloop: "python3-uvloop",
  httptools: "python3-httptools",
  redis: "python3-redis",
  jwt: "python3-jwt",
  cryptography: "python3-cryptography",
  aiohttp: "python3-aiohttp",
  dotenv: "python3-dotenv",
  yaml: "python3-yaml",
  pymongo: "python3-pymongo",
  validators: "python3-validators",
  requests: "python3-requests",
};
export const DEBIAN_PACKAGES = ["python3", "redis-server", ...new Set(Object.values(PYTHON_MODULES))];
const INSTALL_HINT = `bash bench/peer/install-debian.sh   (apt-get update; apt-get install -y --no-install-recommends ${DEBIAN_PACKAGES.join(" ")})`;

/** A reason the peer cannot be set up here; `npm run bench:peer` prints it and exits 3. */
export class SetupError extends Error {}

function which(cmd) {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  for (const dir of ["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    if (existsSync(join(dir, cmd))) return join(dir, cmd);
  return null;
}

/**
 * Checks the machine: the Debian python (not a pyenv or venv one: Debian's packages are installed for
 * it), each module the server imports, redis-server. Returns what was found (versions, paths, the
 * Debian package versions) for the result file; throws SetupError naming every missing package.
 */
export function checkMachine(python) {
  if (!existsSync(python)) {
    throw new SetupError(
      `${python} is missing: install Debian's python3 (the peer runs on it), e.g.\n  ${INSTALL_HINT}`,
    );
  }
  const probe = `
import importlib, json, sys
out = {"python": sys.version.split()[0], "modules": {}}
for name in ${JSON.stringify(Object.keys(PYTHON_MODULES))}:
    try:
        m = importlib.import_module(name)
        out["modules"][name] = {"version": str(getattr(m, "__version__", getattr(m, "VERSION", "?"))), "file": getattr(m, "__file__", None)}
    except Exception as e:
        out["modules"][name] = {"error": type(e).__name__ + ": " + str(e)}
print(json.dumps(out))`;
  let found;
  try {
    found = JSON.parse(
      execFileSync(python, ["-s", "-c", probe], {
        env: pythonEnv(),
        stdio: ["ignore", "pipe", "pipe"],
      }).toString(),
    );
  } catch (err) {
    throw new SetupError(`${python} did not run: ${err.message}`);
  }
  const missing = Object.entries(found.modules)
    .filter(([, m]) => m.error)
    .map(([name, m]) => `${PYTHON_MODULES[name]} (python module ${name}: ${m.error})`);
  const redisServer = which("redis-server");
  if (!redisServer) missing.push("redis-server (no redis-server on PATH)");
  if (missing.length > 0) {
    throw new SetupError(
      `missing Debian packages for the peer:\n  ${missing.join("\n  ")}\ninstall them with:\n  ${INSTALL_HINT}`,
    );
  }
  // Modules imported from elsewhere than Debian's tree (a pip install into /usr/local) would make this
  // a different peer from the one documented: said in the result, and on stderr by the caller.
  const notDebian = Object.entries(found.modules)
    .filter(([, m]) => m.file && !m.file.startsWith("/usr/lib/python3/dist-packages/"))
    .map(([name, m]) => `${name} from ${m.file}`);
  let debian = {};
  try {
    // dpkg-query's own ${field} format, not a JavaScript template.
    const format = ["-f=$", "{Package} $", "{Version}\\n"].join("");
    const text = execFileSync("dpkg-query", ["-W", format, ...DEBIAN_PACKAGES], {
      stdio: ["ignore", "pipe", "ignore"],
    }).toString();
    debian = Object.fromEntries(
      text
        .trim()
        .split("\n")
        .map((l) => l.split(" ")),
    );
  } catch {
    // dpkg-query exits 1 if one is unknown; the import check above is what decides.
  }
  const redisVersion = execFileSync(redisServer, ["--version"]).toString().trim();
  return {
    python,
    pythonVersion: found.python,
    modules: found.modules,
    notDebian,
    debian,
    redisServer,
    redisVersion,
  };
}

/** The environment every peer process gets: nothing of ours (no pyenv, no PYTHONPATH) but PATH and what is passed. */
function pythonEnv(extra = {}) {
  return { PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", LANG: "C.UTF-8", ...extra };
}

function git(args, opts = {}) {
  return execFileSync("git", args, { stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20, ...opts });
}

/**
 * Copies the peer from `repo` (a checkout, or a git dir such as a bare mirror) into `<work>/src`,
 * replacing what was there. Returns { kind, commit, skipped } (skipped: paths whose blobs a partial
 * mirror lacks; none is on the server's import path, or the server module check below fails).
 */
export function copyPeer(repo, work) {
  if (!repo) {
    throw new SetupError(
      "no copy of the peer: pass --peer-repo PATH (or PEER_REPO=PATH), a checkout or a git dir (bare is fine) of github.com/lokingdav/jodi",
    );
  }
  const from = resolve(repo);
  if (!existsSync(from)) throw new SetupError(`--peer-repo ${from}: no such directory`);
  const dest = join(work, "src");
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  if (existsSync(join(from, SERVER_MODULE))) {
    // A checkout: its files as they are (its .git, and any .env of the user's, left behind).
    execFileSync("cp", ["-a", `${from}/.`, dest]);
    rmSync(join(dest, ".git"), { recursive: true, force: true });
    rmSync(join(dest, ".env"), { force: true });
    let commit = "unknown (not a git checkout)";
    try {
      commit = git(["-C", from, "rev-parse", "HEAD"]).toString().trim();
      const dirty = git(["-C", from, "status", "--porcelain", "--untracked-files=no"]).toString();
      if (dirty.length > 0) commit += "+dirty";
    } catch {
      // not a git checkout
    }
    return { kind: "checkout", from, commit, skipped: [] };
  }
  let commit;
  try {
    commit = git(["--git-dir", from, "rev-parse", "--verify", "HEAD^{commit}"]).toString().trim();
  } catch {
    throw new SetupError(`--peer-repo ${from}: neither a checkout holding ${SERVER_MODULE} nor a git dir`);
  }
  const listing = git(["--git-dir", from, "ls-tree", "-r", "-z", commit])
    .toString()
    .split("\0")
    .filter(Boolean);
  const skipped = [];
  for (const line of listing) {
    const [meta, path] = line.split("\t");
    const [, type, object] = meta.split(" ");
    if (type !== "blob") continue;
    let bytes;
    try {
      bytes = git(["--git-dir", from, "cat-file", "blob", object]);
    } catch {
      skipped.push(path);
      continue;
    }
    mkdirSync(dirname(join(dest, path)), { recursive: true });
    writeFileSync(join(dest, path), bytes);
  }
  if (!existsSync(join(dest, SERVER_MODULE))) {
    throw new SetupError(`--peer-repo ${from}: HEAD (${commit}) has no ${SERVER_MODULE}`);
  }
  return { kind: "git dir", from, commit, skipped };
}

/**
 * The peer's certificates (<work>/conf/certs.json), made by its own setup script the first time: a
 * root, 11 intermediates and 7,480 end-entity credentials (ES256), as its experiments use. Its
 * write_identity_keys step rewrites a `.env` in the working directory, which must exist: an empty one
 * is made in <work>, where jodi/config.py's load_dotenv (searching up from <work>/src/jodi) finds it.
 */
export function ensureCertificates(python, work, log) {
  const conf = join(work, "conf");
  const file = join(conf, "certs.json");
  if (existsSync(file)) return file;
  mkdirSync(conf, { recursive: true });
  if (!existsSync(join(work, ".env"))) writeFileSync(join(work, ".env"), "");
  log(`making the peer's certificates with its own setup script (once per work dir, ~15 s)...`);
  execFileSync(python, ["-s", "-m", "jodi.prototype.scripts.setup", "--certs"], {
    cwd: work,
    env: pythonEnv({
      PYTHONPATH: `${join(work, "src")}:${STANDINS_DIR}`,
      PYTHONPYCACHEPREFIX: join(work, "pycache"),
      CONF_DIR: conf,
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (!existsSync(file)) throw new SetupError(`the peer's setup script made no ${file}`);
  return file;
}

/** Live process groups we started, killed at exit whatever happens. */
const live = new Set();
process.on("exit", () => {
  for (const pid of live) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

/** Spawns `cmd args` as the leader of its own process group, output to `logFile`; returns a stop(). */
export function spawnGroup(cmd, args, { cwd, env, logFile }) {
  const fd = openSync(logFile, "a");
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  live.add(child.pid);
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  exited.then(() => live.delete(child.pid));
  let stopping;
  const kill = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is gone
    }
  };
  const stop = () => {
    stopping ??= (async () => {
      kill("SIGTERM");
      const timer = setTimeout(() => kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
      kill("SIGKILL"); // anything of the group still there (a worker outliving its master)
      live.delete(child.pid);
    })();
    return stopping;
  };
  return {
    pid: child.pid,
    child,
    exited,
    stop,
    isDead: () => child.exitCode !== null || child.signalCode !== null,
  };
}

/** The tail of a log file, for an error message. */
export function tail(file, chars = 3000) {
  try {
    return readFileSync(file, "utf8").slice(-chars);
  } catch {
    return "";
  }
}

/**
 * One peer server: its own redis-server and `uvicorn ... --workers N`, in <work>/run/<name>/ (its cwd:
 * the server logs to logs/cps_server.log relative to it). Configuration is jodi/config.py's environment
 * variables (README.md lists each and why). Resolves once GET /health answers and Redis holds the
 * certificates; returns { url, audience, roots (pids whose trees are the server), stop }.
 */
export async function startPeer({ python, work, name, workers, log }) {
  const dir = join(work, "run", name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "logs"), { recursive: true });
  mkdirSync(join(dir, "redis"), { recursive: true });
  const redisPort = await freePort();
  const redis = spawnGroup(
    which("redis-server"),
    ["--port", String(redisPort), "--bind", "127.0.0.1", "--dir", join(dir, "redis")],
    { cwd: dir, env: pythonEnv(), logFile: join(dir, "redis.log") },
  );
  await waitFor(
    async () => redisPing(redisPort),
    10_000,
    () => (redis.isDead() ? tail(join(dir, "redis.log")) : null),
  );
  const port = await freePort();
  const audience = `127.0.0.1:${port}`;
  const env = pythonEnv({
    PYTHONPATH: `${join(work, "src")}:${STANDINS_DIR}`,
    // Bytecode caches in the work dir, not beside the stand-ins in this repository.
    PYTHONPYCACHEPREFIX: join(work, "pycache"),
    NODE_IP: "127.0.0.1",
    NODE_PORT: String(port),
    CACHE_HOST: "127.0.0.1",
    CACHE_PORT: String(redisPort),
    CONF_DIR: join(work, "conf"),
    USE_LOCAL_CERT_REPO: "true",
    APP_DEBUG: "0",
  });
  const args = [
    "-s",
    "-m",
    "uvicorn",
    SERVER_APP,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--workers",
    String(workers),
  ];
  const server = spawnGroup(python, args, { cwd: dir, env, logFile: join(dir, "uvicorn.log") });
  const url = `http://${audience}`;
  const stop = () => Promise.all([server.stop(), redis.stop()]);
  try {
    await waitForHealth(url, {
      timeoutMs: 60_000,
      failed: () =>
        server.isDead() ? new Error(`uvicorn exited:\n${tail(join(dir, "uvicorn.log"))}`) : null,
    });
    // Each worker stores every certificate in Redis as it starts (USE_LOCAL_CERT_REPO) and logs
    // "Application startup complete." when it serves: wait for all of them, not the first.
    const started = () =>
      tail(join(dir, "uvicorn.log"), 1 << 20).split("Application startup complete").length - 1;
    await waitFor(
      async () => started() >= workers,
      60_000,
      () => (server.isDead() ? tail(join(dir, "uvicorn.log")) : null),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  log(`peer ${name}: uvicorn --workers ${workers} on ${url}, redis on 127.0.0.1:${redisPort} (${dir})`);
  return {
    url,
    audience,
    roots: [server.pid, redis.pid],
    stop,
    dir,
    redisPort,
    command: `python3 ${args.join(" ")}`,
  };
}

async function waitFor(test, timeoutMs, failed) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = failed();
    if (why !== null) throw new Error(why);
    if (await test()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function redisPing(port) {
  const { connect } = await import("node:net");
  return new Promise((resolveOk) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (d) => {
      text += d.toString();
      if (text.includes("\r\n")) {
        socket.destroy();
        resolveOk(text.startsWith("+PONG"));
      }
    });
    socket.on("error", () => resolveOk(false));
  });
}
