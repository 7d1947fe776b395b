#!/usr/bin/env node
/**
 * `npm start`: the CPS on workerd through Miniflare's API (src/dev/miniflare-server.mjs: no dev proxy
 * or log relay in the request path), with Durable Object and KV state persisted in .wrangler/state,
 * so stored PASSporTs survive a restart within their TTL.
 *
 *   PORT=8899 HOST=0.0.0.0 npm start -- --var METRICS:off
 *   npm start -- --env production      # the production configuration, run locally
 *   npm start -- --watch --log-level debug   # through `wrangler dev`: rebuilds on edits, any of its flags
 *
 * PORT (default 8787) and HOST or IP (default 127.0.0.1) choose the listen address (an explicit
 * --port, --ip or --persist-to after `--` wins). Without --watch the flags are --env, --var KEY:VALUE
 * (wins over every other value), --inspector-port and --relay; anything else is refused (exit 2).
 * With --watch anything after `--` goes to `wrangler dev` as is, SIGINT and SIGTERM go to wrangler,
 * and this process exits with wrangler's code; without it they stop the server and exit 0.
 *
 * What local development adds to wrangler.toml (which is the production configuration), for this
 * run only:
 * - CPS_ORIGIN=http://127.0.0.1:<port> (or $CPS_ORIGIN): the Worker serves only with an origin;
 * - ALLOW_UNTOKENED_STORES=true, announced below, unless an --env is chosen or the origin is not
 *   loopback (the Worker would refuse to serve with it then);
 * - the secrets (issuer keys, decoy secret and OHTTP gateway key made once and kept in .wrangler/, the demo CA's root
 *   when `stir-oob ca init` has run), inside Miniflare's configuration (with --watch: in an env file of
 *   mode 0600 under .wrangler/, removed at exit, passed with `--env-file`): never on the command line,
 *   where any local user reads them in `ps`. A .dev.vars (or .dev.vars.<env>) of yours wins over them.
 * - TEST-ONLY demo credentials for the /demo page (src/dev/demo-credentials.mjs), made fresh each run,
 *   with the secrets (DEMO_CREDENTIALS; their root added to TRUST_ANCHORS_PEM), unless an --env is
 *   chosen or the origin is not loopback;
 * - the web pages are built from web/ (src/dev/build-web.mjs, wrangler.toml's `[build]`).
 * - METRICS_TOKEN_SHA256: the SHA-256 of a local operator token made once (.wrangler/dev-operator-token,
 *   0600) for /console and GET /metrics (docs/metrics.md); printed: where the token is, not the token;
 * - with `--relay`: one fresh relay token per run, its SHA-256 listed in the CPS's OHTTP_RELAYS (in the
 *   same env file) and the token in the relay's OHTTP_GATEWAY_TOKENS (the relay's own 0600 env file),
 *   so the gateway accepts this relay and refuses any other sender (403 OHTTP_RELAY_UNKNOWN).
 * The output (wrangler's with --watch, whose request lines name the called numbers in their paths;
 * the Worker's own log lines either way) is printed through a redactor (src/dev/redact-log.mjs)
 * that masks numbers.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { constants } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseEnv } from "node:util";
import { makeDemoCredentials } from "./demo-credentials.mjs";
import { ensureLocalDecoySecret, ensureLocalIssuerKeys, ensureLocalOhttpKeys } from "./issuer-key.mjs";
import {
  baseUrl,
  portIsFree,
  REPO_ROOT,
  waitForHealth,
  wranglerDevArgs,
  wranglerEnv,
  writeEnvFile,
} from "./local-server.mjs";
import { lineRedactor } from "./redact-log.mjs";
import { importBundle } from "./ts-module.mjs";

/** The value of `--name value` or `--name=value` in args, if present. */
function flagValue(args, ...names) {
  for (let i = 0; i < args.length; i++) {
    for (const name of names) {
      if (args[i] === name) return args[i + 1];
      if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
    }
  }
  return undefined;
}

/** The local operator token in `file` (32 random bytes, base64url), made with mode 0600 if absent. */
async function ensureLocalOperatorToken(file) {
  try {
    const text = (await readFile(file, "utf8")).trim();
    if (/^[A-Za-z0-9_-]{43}$/.test(text)) return text;
  } catch (err) {
    if (err?.code !== "ENOENT") throw err;
  }
  const token = randomBytes(32).toString("base64url");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}

/**
 * The flags the default (Miniflare) server takes after `--`: `--env NAME` (read above), `--var
 * KEY:VALUE` (repeatable; wins over every other value) and `--inspector-port N`. Anything else is a
 * `wrangler dev` flag, which needs `--watch`.
 */
function directFlags(args) {
  const vars = {};
  let inspectorPort;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const [name, inline] = flag.startsWith("-") ? flag.split(/=(.*)/s) : [flag];
    const value = inline ?? args[++i];
    if (name === "--env" || name === "-e") continue;
    if (name === "--var") {
      if (!/^[A-Za-z_][A-Za-z0-9_]*:/.test(value ?? ""))
        return { error: `--var takes KEY:VALUE, got ${value}` };
      const at = value.indexOf(":");
      vars[value.slice(0, at)] = value.slice(at + 1);
    } else if (name === "--inspector-port" && /^\d+$/.test(value ?? "")) {
      inspectorPort = Number(value);
    } else {
      return {
        error: `${flag}: not a flag of npm start (--env NAME, --var KEY:VALUE, --inspector-port N, --persist-to DIR, --port N, --ip ADDRESS, --relay, --watch); wrangler dev's flags need --watch`,
      };
    }
  }
  return { vars, inspectorPort };
}

/** args without `--name value` / `--name=value`. */
function withoutFlag(args, name) {
  const out = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) i++;
    else if (!args[i].startsWith(`${name}=`)) out.push(args[i]);
  }
  return out;
}

let extraArgs = process.argv.slice(2);
// `--relay`: the OHTTP relay Worker too (relay/wrangler.toml, src/dev/relay-server.mjs), on RELAY_PORT
// (default PORT+1), forwarding to this CPS as gateway "cps" (docs/ohttp.md).
const withRelay = extraArgs.includes("--relay");
// `--watch`: serve through `wrangler dev` (rebuilds on edits, a log line per request), not Miniflare's API.
const watch = extraArgs.includes("--watch");
extraArgs = extraArgs.filter((arg) => arg !== "--relay" && arg !== "--watch");
const port = Number(flagValue(extraArgs, "--port") ?? process.env.PORT ?? 8787);
const host = flagValue(extraArgs, "--ip") ?? process.env.HOST ?? process.env.IP ?? "127.0.0.1";
const persistTo = flagValue(extraArgs, "--persist-to") ?? ".wrangler/state";
const wranglerEnvName = flagValue(extraArgs, "--env", "-e");
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`start: PORT must be a TCP port number, got ${JSON.stringify(process.env.PORT)}`);
  process.exit(2);
}
// Checked here so that a /health answer from some other server is never taken for ours.
if (port !== 0 && !(await portIsFree(host, port))) {
  console.error(`start: ${host}:${port} is already in use; set PORT to another port`);
  process.exit(1);
}
for (const flag of ["--port", "--ip", "--persist-to"]) extraArgs = withoutFlag(extraArgs, flag);
// Checked before anything is made (keys, demo credentials): a mistyped flag costs nothing.
const direct = watch ? undefined : directFlags(extraArgs);
if (direct?.error) {
  console.error(`start: ${direct.error}`);
  process.exit(2);
}

const url = baseUrl(host, port);
const origin = process.env.CPS_ORIGIN || url;
// The Worker's own rule (src/config.ts honours dev switches only for a loopback CPS_ORIGIN), not a copy.
const { isLoopback } = await importBundle({ name: "urls", entry: join(REPO_ROOT, "src/stir/urls.ts") });
// The development switches (untokened stores, TEST-ONLY demo credentials) only when the CPS is both
// named and reachable on loopback alone: listening on another address (HOST=0.0.0.0) would open them
// to the network while the origin still says 127.0.0.1.
const hostIsLoopback = isLoopback(host.includes(":") && !host.startsWith("[") ? `[${host}]` : host);
const loopbackOrigin = URL.canParse(origin) && isLoopback(new URL(origin).hostname) && hostIsLoopback;
if (!hostIsLoopback) {
  console.log(
    `start: listening on ${host}, not loopback: no untokened stores and no demo credentials (they would be open to the network)`,
  );
}

// Local demo secrets: the blind-signature issuer keys, the decoy secret and the OHTTP gateway key
// (made once, kept in .wrangler/) and, when `stir-oob ca init` has run, its root as the trust anchor
// for credential tokens. In production all four are Worker secrets (`wrangler secret put`).
const wranglerDir = join(REPO_ROOT, ".wrangler");
// `--relay`: one fresh relay token per run; the CPS lists only its hash (OHTTP_RELAYS), the relay
// sends it (OHTTP_GATEWAY_TOKENS), so the gateway's relay check is on locally too (docs/ohttp.md).
const relayToken = withRelay ? (await import("./relay-server.mjs")).localRelayToken() : undefined;
const secrets = {
  ...(relayToken ? { OHTTP_RELAYS: relayToken.relays } : {}),
  TOKEN_ISSUER_KEYS: await ensureLocalIssuerKeys(wranglerDir),
  DECOY_SECRET: await ensureLocalDecoySecret(wranglerDir),
  // The Oblivious HTTP gateway's key (docs/ohttp.md), so the relay and --relay work locally.
  OHTTP_KEYS: await ensureLocalOhttpKeys(wranglerDir),
};
const home = resolve(REPO_ROOT, process.env.STIR_OOB_HOME ?? ".stir-oob");
const rootPem = join(home, "ca", "root.pem");
if (existsSync(rootPem)) {
  secrets.TRUST_ANCHORS_PEM = readFileSync(rootPem, "utf8");
  console.log(`start: trusting the demo CA ${rootPem} for credential tokens`);
} else {
  console.log(
    wranglerEnvName === undefined && loopbackOrigin
      ? "start: no demo CA yet (run `npm run stir-oob -- ca init` for the CLI's credentials)"
      : "start: no demo CA yet (run `npm run stir-oob -- ca init`), so credential-token routes answer 500 MISCONFIGURED",
  );
}
// The /demo page (docs/web.md): fresh TEST-ONLY credentials each run, served by the Worker only with
// a loopback origin (src/routes/demo.ts); their root is trusted beside the demo CA's, for this run.
if (wranglerEnvName === undefined && loopbackOrigin) {
  const demo = await makeDemoCredentials();
  secrets.DEMO_CREDENTIALS = demo.json;
  secrets.TRUST_ANCHORS_PEM = [secrets.TRUST_ANCHORS_PEM, demo.rootPem].filter(Boolean).join("\n");
  console.log(`start: TEST-ONLY demo credentials made for this run: open ${url}/demo`);
}
// The operator's token for /console and GET /metrics (docs/metrics.md): made once, kept in .wrangler/
// (0600); the Worker gets only its SHA-256 (METRICS_TOKEN_SHA256), as in production.
const operatorTokenFile = join(wranglerDir, "dev-operator-token");
secrets.METRICS_TOKEN_SHA256 = createHash("sha256")
  .update(await ensureLocalOperatorToken(operatorTokenFile))
  .digest("base64url");
const vars = { CPS_ORIGIN: origin };
if (wranglerEnvName === undefined && loopbackOrigin) {
  vars.ALLOW_UNTOKENED_STORES = "true";
  console.log(
    "start: ALLOW_UNTOKENED_STORES is on for local development: stores without a storage token are accepted",
  );
}

/** True once we stop the server on purpose (its exit is then expected). */
let stopping = false;
/** True once the server has exited or failed to start (waitForHealth stops waiting). */
let serverGone = false;

if (watch) await serveWithWrangler();
else await serveDirect();

/**
 * The default: Miniflare's API (src/dev/miniflare-server.mjs), no dev proxy or log relay in the
 * request path. The secrets reach workerd inside Miniflare's configuration, not a file or `ps`.
 */
async function serveDirect() {
  const devVars = {};
  // .dev.vars(.<env>) as wrangler dev reads it: its values win over ours, as they do there.
  for (const name of [wranglerEnvName && `.dev.vars.${wranglerEnvName}`, ".dev.vars"]) {
    if (name && existsSync(join(REPO_ROOT, name))) {
      Object.assign(devVars, parseEnv(readFileSync(join(REPO_ROOT, name), "utf8")));
      break;
    }
  }
  const { serveWithMiniflare } = await import("./miniflare-server.mjs");
  let server;
  try {
    server = await serveWithMiniflare({
      host,
      port,
      persistTo: resolve(REPO_ROOT, persistTo),
      envName: wranglerEnvName,
      inspectorPort: direct.inspectorPort,
      bindings: { ...secrets, ...devVars, ...vars, ...direct.vars },
      // The Worker's own logs, through the redactor like wrangler's output.
      onOutput: (stdout, stderr) => {
        stdout.pipe(lineRedactor()).pipe(process.stdout, { end: false });
        stderr.pipe(lineRedactor()).pipe(process.stderr, { end: false });
        // workerd's output ends when it exits: unless we are stopping it, the CPS is gone, so say so
        // and exit rather than keep running with nothing listening.
        stdout.once("end", () => {
          if (stopping) return;
          serverGone = true;
          console.error("start: workerd exited unexpectedly; the CPS is not running");
          process.exit(1);
        });
      },
    });
  } catch (err) {
    serverGone = true;
    console.error(`start: the CPS did not start: ${err.message}`);
    process.exit(1);
  }
  // The configuration in force, as wrangler dev lists it: wrangler.toml's vars, npm start's own and
  // --var's with their values; what .dev.vars sets (it may hold secrets) and the secrets by name only.
  console.log("start: vars (wrangler.toml, then npm start's and --var's):");
  const shown = { ...server.configVars, ...vars, ...direct.vars };
  for (const [name, value] of Object.entries(shown)) {
    if (name in devVars && !(name in vars) && !(name in direct.vars)) {
      console.log(`  env.${name} (from .dev.vars, not shown)`);
      continue;
    }
    const text = String(value);
    console.log(`  env.${name} ("${text.length > 60 ? `${text.slice(0, 57)}...` : text}")`);
  }
  const hidden = Object.keys({ ...secrets, ...devVars }).filter((name) => !(name in shown));
  if (hidden.length > 0) console.log(`  secrets and .dev.vars, not shown: ${hidden.join(", ")}`);
  console.log(`Ready on ${url}`);
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
      stopping = true;
      server.dispose().finally(() => process.exit(0));
    });
  }
}

/**
 * `--watch`: `wrangler dev`, which rebuilds and reloads on every source edit and prints a (redacted)
 * line per request; its flags pass through. The secrets go in an env file of mode 0600, removed at exit.
 */
async function serveWithWrangler() {
  // ensureLocal* above read their files from wranglerDir or created it: it exists.
  const secretsDir = await mkdtemp(join(wranglerDir, "npm-start-"));
  const envFiles = [await writeEnvFile(join(secretsDir, "secrets.env"), secrets)];
  const removeSecrets = () => rmSync(secretsDir, { recursive: true, force: true });
  // Without --env-file wrangler would read .dev.vars(.<env>) itself; keep honouring it, after ours.
  for (const name of [wranglerEnvName && `.dev.vars.${wranglerEnvName}`, ".dev.vars"]) {
    if (name && existsSync(join(REPO_ROOT, name))) {
      envFiles.push(join(REPO_ROOT, name));
      break;
    }
  }
  const child = spawn(
    process.execPath,
    wranglerDevArgs({ host, port, persistTo, vars, envFiles, extraArgs }),
    {
      cwd: REPO_ROOT,
      env: wranglerEnv(),
      stdio: ["inherit", "pipe", "pipe"],
    },
  );
  const printed = [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ].map(([from, to]) => {
    const redactor = lineRedactor();
    from.pipe(redactor).pipe(to, { end: false });
    return new Promise((done) => redactor.on("end", done));
  });

  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    });
  }
  process.on("exit", removeSecrets);

  child.on("error", (err) => {
    console.error(`start: could not run wrangler: ${err.message}`);
    process.exit(1);
  });

  // After wrangler's last output has gone through the redactor.
  child.on("close", async (code, signal) => {
    serverGone = true;
    await Promise.all(printed);
    process.exit(code ?? 128 + (constants.signals[signal] ?? 0));
  });
}

waitForHealth(url, {
  timeoutMs: 120_000,
  failed: () => (serverGone ? new Error("exited") : null),
}).then(
  async () => {
    console.log(`\nCPS ready on ${url} (GET /health answered; state in ${persistTo})\n`);
    console.log(
      `Operator console: ${url}/console with the token in ${relative(REPO_ROOT, operatorTokenFile)} ` +
        `(also for GET /metrics: curl -H "Authorization: Bearer $(cat ${relative(REPO_ROOT, operatorTokenFile)})" ${url}/metrics)\n`,
    );
    if (withRelay) await startRelay();
  },
  (err) => {
    if (err.message !== "exited") console.error(`start: ${err.message}`);
  },
);

/** The relay beside the CPS (`--relay`); the exit hook of local-server.mjs stops it with us. */
async function startRelay() {
  const { LOCAL_GATEWAY_NAME, startLocalRelay } = await import("./relay-server.mjs");
  const relayPort = Number(process.env.RELAY_PORT ?? (port === 0 ? 0 : port + 1));
  if (relayPort !== 0 && !(await portIsFree(host, relayPort))) {
    console.error(`start: ${host}:${relayPort} is already in use; set RELAY_PORT to another port`);
    return;
  }
  try {
    const relay = await startLocalRelay({
      host,
      port: relayPort === 0 ? undefined : relayPort,
      gateways: { [LOCAL_GATEWAY_NAME]: url },
      tokens: relayToken ? { [LOCAL_GATEWAY_NAME]: relayToken.token } : undefined,
      persistTo: join(wranglerDir, "relay-state"),
      quiet: false,
    });
    console.log(`\nOHTTP relay ready: ${relay.gatewayUrl()} (keys ${relay.keysUrl()}) -> ${url}\n`);
  } catch (err) {
    console.error(`start: the relay did not start: ${err.message}`);
  }
}
