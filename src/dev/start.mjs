#!/usr/bin/env node
/**
 * `npm start`: the CPS on workerd through `wrangler dev`, with Durable Object and KV state persisted
 * in .wrangler/state, so stored PASSporTs survive a restart within their TTL.
 *
 *   PORT=8899 HOST=0.0.0.0 npm start -- --log-level debug
 *
 * PORT (default 8787) and HOST or IP (default 127.0.0.1) choose the listen address; anything after
 * `--` goes to `wrangler dev` as is (an explicit --port, --ip or --persist-to there wins).
 * SIGINT and SIGTERM go to wrangler, and this process exits with wrangler's code.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { join, resolve } from "node:path";
import { ensureLocalIssuerKeys } from "./issuer-key.mjs";
import {
  baseUrl,
  portIsFree,
  REPO_ROOT,
  waitForHealth,
  wranglerDevArgs,
  wranglerEnv,
} from "./local-server.mjs";

/** The value of `--name value` or `--name=value` in args, if present. */
function flagValue(args, name) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
  }
  return undefined;
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
const port = Number(flagValue(extraArgs, "--port") ?? process.env.PORT ?? 8787);
const host = flagValue(extraArgs, "--ip") ?? process.env.HOST ?? process.env.IP ?? "127.0.0.1";
const persistTo = flagValue(extraArgs, "--persist-to") ?? ".wrangler/state";
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

// Local demo credentials: the blind-signature issuer keys (made once, kept in .wrangler/) and, when
// `stir-oob ca init` has run, its root as the trust anchor for credential tokens. Never in production:
// there both are secrets (`wrangler secret put TOKEN_ISSUER_KEYS` / `TRUST_ANCHORS_PEM`).
const devVars = [];
const hasVar = (name) => extraArgs.some((a, i) => extraArgs[i - 1] === "--var" && a.startsWith(`${name}:`));
if (!hasVar("TOKEN_ISSUER_KEYS")) {
  devVars.push("--var", `TOKEN_ISSUER_KEYS:${await ensureLocalIssuerKeys(join(REPO_ROOT, ".wrangler"))}`);
}
const home = resolve(REPO_ROOT, process.env.STIR_OOB_HOME ?? ".stir-oob");
const rootPem = join(home, "ca", "root.pem");
if (!hasVar("TRUST_ANCHORS_PEM")) {
  if (existsSync(rootPem)) {
    devVars.push("--var", `TRUST_ANCHORS_PEM:${readFileSync(rootPem, "utf8")}`);
    console.log(`start: trusting the demo CA ${rootPem} for credential tokens`);
  } else {
    console.log(
      "start: no demo CA yet (run `npm run stir-oob -- ca init`), so credential-token routes answer 500 MISCONFIGURED",
    );
  }
}
console.log(
  "start: ALLOW_UNTOKENED_STORES is on for local development: stores without a storage token are accepted",
);
extraArgs = [...devVars, ...extraArgs];

const child = spawn(process.execPath, wranglerDevArgs({ host, port, persistTo, extraArgs }), {
  cwd: REPO_ROOT,
  env: wranglerEnv(),
  stdio: "inherit",
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}

child.on("error", (err) => {
  console.error(`start: could not run wrangler: ${err.message}`);
  process.exit(1);
});

child.on("exit", (code, signal) => {
  process.exit(code ?? 128 + (constants.signals[signal] ?? 0));
});

const url = baseUrl(host, port);
waitForHealth(url, {
  timeoutMs: 120_000,
  failed: () => (child.exitCode !== null || child.signalCode !== null ? new Error("exited") : null),
}).then(
  () => console.log(`\nCPS ready on ${url} (GET /health answered; state in ${persistTo})\n`),
  (err) => {
    if (err.message !== "exited") console.error(`start: ${err.message}`);
  },
);
