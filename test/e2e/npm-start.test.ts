/**
 * `npm start` (src/dev/start.mjs) as a local user would run it, and what another local user could see
 * of it: the process list (`ps`), the files it writes, and the log it prints; both ways it serves
 * (Miniflare's API by default, `wrangler dev` with `--watch`). Also the e2e servers (startLocalServer),
 * which run `wrangler dev`.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEV_DECOY_SECRET_FILE, DEV_KEYS_FILE } from "../../src/dev/issuer-key.mjs";
import { freePort, REPO_ROOT, startLocalServer, waitForHealth } from "../../src/dev/local-server.mjs";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { createTestPki } from "../../src/stir/test-pki.js";
import { sealedFor, storeRequest } from "../helpers/cps.js";
import { serializeTestPki } from "../helpers/pki.js";

const TN = "12025550123";
const DIGITS_OF_TN = /2025550123|202-?555-?0123/;

interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
  stop: () => Promise<void>;
}

/** Runs `node src/dev/start.mjs args...` (what `npm start -- args...` runs) on a free port. */
async function npmStart(args: string[], env: Record<string, string>): Promise<Started> {
  const port = await freePort();
  let out = "";
  const child = spawn(process.execPath, [join(REPO_ROOT, "src/dev/start.mjs"), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, PORT: String(port) },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-(child.pid as number), "SIGTERM");
    } catch {
      // gone already
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid as number), "SIGKILL");
      } catch {
        // gone
      }
    }, 10_000);
    await exited;
    clearTimeout(timer);
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(url, {
      timeoutMs: 80_000,
      failed: () => (child.exitCode !== null ? new Error(`npm start exited:\n${out}`) : null),
    });
    // The "ready" banner comes after the health check: wait for it so the output is complete.
    for (let i = 0; i < 50 && !out.includes("CPS ready on"); i++)
      await new Promise((r) => setTimeout(r, 100));
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, url, output: () => out, stop };
}

function ps(): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile("ps", ["-eo", "args", "-ww"], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
}

/** Every `--env-file <path>` on the command lines of `ps` that mention `marker`. */
function envFilesIn(psText: string, marker: string): string[] {
  const files: string[] = [];
  for (const line of psText.split("\n")) {
    if (!line.includes(marker)) continue;
    for (const m of line.matchAll(/--env-file[= ](\S+)/g)) files.push(m[1] as string);
  }
  return files;
}

let home: string;
let state: string;
let rootPem: string;
let dev: Started;
/** `npm start -- --watch --env production`: the wrangler dev path, in the production configuration. */
let prod: Started;
let watchState: string;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "npm-start-home-"));
  state = await mkdtemp(join(tmpdir(), "npm-start-state-"));
  ({ rootPem } = await serializeTestPki(await createTestPki()));
  await mkdir(join(home, "ca"), { recursive: true });
  await writeFile(join(home, "ca", "root.pem"), rootPem);
  watchState = await mkdtemp(join(tmpdir(), "npm-start-prod-"));
  // One at a time: two starts at once on two cores can outlast the health timeout.
  dev = await npmStart(["--persist-to", state], { STIR_OOB_HOME: home });
  prod = await npmStart(["--watch", "--env", "production", "--persist-to", watchState], {
    STIR_OOB_HOME: home,
  });
}, 180_000);

afterAll(async () => {
  await dev?.stop();
  await prod?.stop();
  for (const dir of [home, state, watchState]) if (dir) await rm(dir, { recursive: true, force: true });
});

describe("adversary #13: no secret on a process command line", () => {
  it("npm start keeps the issuer keys, trust anchors and decoy secret off `ps` and out of any env file", async () => {
    const keys = JSON.parse(await readFile(join(REPO_ROOT, ".wrangler", DEV_KEYS_FILE), "utf8")) as {
      privateKeyPkcs8: string;
    }[];
    const decoySecret = (await readFile(join(REPO_ROOT, ".wrangler", DEV_DECOY_SECRET_FILE), "utf8")).trim();
    expect(decoySecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const text = await ps();
    // The attack: any local user reads the process list.
    for (const k of keys) expect(text).not.toContain(k.privateKeyPkcs8.slice(0, 64));
    const ours = text.split("\n").filter((line) => line.includes(state));
    expect(ours.length).toBeGreaterThan(0);
    expect(ours.join("\n")).not.toContain("TOKEN_ISSUER_KEYS");
    expect(text).not.toContain(rootPem.split("\n")[1] as string);
    expect(text).not.toContain(decoySecret);
    // Served through Miniflare's API, they reach workerd inside its configuration: no file to find.
    expect(envFilesIn(text, state)).toEqual([]);
    // Control: the Worker has them (a decoy secret is required to serve, and the issuer keys are listed).
    const issuer = await fetch(`${dev.url}/tokens/keys`);
    expect(issuer.status).toBe(200);
  });

  it("npm start -- --watch (wrangler dev) passes them in a 0600 file, not in `ps`", async () => {
    const keys = JSON.parse(await readFile(join(REPO_ROOT, ".wrangler", DEV_KEYS_FILE), "utf8")) as {
      privateKeyPkcs8: string;
    }[];
    const text = await ps();
    for (const k of keys) expect(text).not.toContain(k.privateKeyPkcs8.slice(0, 64));
    const ours = text.split("\n").filter((line) => line.includes(watchState));
    expect(ours.length).toBeGreaterThan(0);
    expect(ours.join("\n")).not.toContain("TOKEN_ISSUER_KEYS");
    const files = envFilesIn(text, watchState);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const body = await readFile(file, "utf8");
      expect(body).toContain("TOKEN_ISSUER_KEYS");
      expect(body).toContain("DECOY_SECRET");
    }
  });

  it("the e2e servers (startLocalServer) pass their secret vars in a 0600 file, removed on stop", async () => {
    const secret = encodeBase64url(crypto.getRandomValues(new Uint8Array(32)));
    const server = await startLocalServer({ vars: { TOKEN_ISSUER_KEYS: "[]", DECOY_SECRET: secret } });
    let files: string[] = [];
    try {
      const text = await ps();
      expect(text).not.toContain(secret);
      files = [...new Set(envFilesIn(text, server.persistTo))];
      expect(files).toHaveLength(1);
      expect((await stat(files[0] as string)).mode & 0o777).toBe(0o600);
      expect(await readFile(files[0] as string, "utf8")).toContain(secret);
    } finally {
      await server.stop();
    }
    await expect(stat(files[0] as string)).rejects.toThrow(/ENOENT/);
  });
});

describe("adversary #14: npm start's log names no telephone number", () => {
  /** A store, a list, a miss, key and discovery lookups of TN on `server`; returns its output after. */
  async function traffic(server: Started): Promise<string> {
    const { text } = await sealedFor(TN);
    await (await fetch(storeRequest(server.url, TN, text))).body?.cancel();
    expect((await fetch(`${server.url}/cps/${TN}/ppts`)).status).toBe(200);
    expect((await fetch(`${server.url}/cps/${TN}/ppts/${"0".repeat(32)}`)).status).toBe(404);
    await (await fetch(`${server.url}/keys/${TN}`)).body?.cancel();
    await (await fetch(`${server.url}/keys?prefix=1202555`)).body?.cancel();
    await (await fetch(`${server.url}/.well-known/stir-oob?tn=${TN}`)).body?.cancel();
    // Log lines come after the answers: give the last ones a moment.
    await new Promise((r) => setTimeout(r, 1_500));
    return server.output();
  }

  it("npm start: after a store, a list, a miss and key lookups the output holds no number, and says Ready", async () => {
    const out = await traffic(dev);
    // Control: the Worker's own log lines reach the output (its warning on the first untokened store).
    expect(out).toMatch(/"event":"untokened_stores_enabled"/);
    expect(out).toMatch(/Ready on http:\/\/127\.0\.0\.1:\d+/);
    expect(out).not.toMatch(DIGITS_OF_TN);
    expect(out).not.toContain("1202555");
  });

  it("npm start -- --watch: wrangler's request lines are there, redacted", async () => {
    const out = await traffic(prod);
    // Control: the request lines are there (redacted), so the check below reads real log text.
    expect(out).toMatch(/GET \/cps\/\S*\/ppts/);
    expect(out).toMatch(/Ready on http:\/\/127\.0\.0\.1:\d+/);
    expect(out).not.toMatch(DIGITS_OF_TN);
    expect(out).not.toContain("1202555");
  });
});

describe("adversary #12: `npm start -- --env production` runs the production configuration", () => {
  it("announces no untokened stores, serves, and refuses a store without a token", async () => {
    // Control: the development run does announce it, and lists the var as on.
    expect(dev.output()).toMatch(/ALLOW_UNTOKENED_STORES is on/);
    expect(dev.output()).toMatch(/ALLOW_UNTOKENED_STORES \("true"\)/);
    expect(prod.output()).not.toMatch(
      /ALLOW_UNTOKENED_STORES is on|stores without a storage token are accepted/,
    );
    expect(prod.output()).toMatch(/ALLOW_UNTOKENED_STORES \("false"\)/);
    const { text } = await sealedFor(TN);
    const res = await fetch(storeRequest(prod.url, TN, text));
    expect(res.status).toBe(401);
    expect(((await res.json()) as { code: string }).code).toBe("TOKEN_MISSING");
  });

  it("if workerd dies, npm start says so and exits 1 instead of running on with nothing listening", async () => {
    const crashState = await mkdtemp(join(tmpdir(), "npm-start-crash-"));
    const crash = await npmStart(["--persist-to", crashState], { STIR_OOB_HOME: home });
    try {
      const exited = new Promise<number | null>((r) => crash.child.once("exit", (c) => r(c)));
      const children = await new Promise<string>((resolve, reject) =>
        execFile("pgrep", ["-P", String(crash.child.pid), "workerd"], (err, stdout) =>
          err ? reject(err) : resolve(stdout),
        ),
      );
      const workerd = Number(children.trim().split("\n")[0]);
      expect(workerd).toBeGreaterThan(0);
      process.kill(workerd, "SIGKILL");
      expect(await exited).toBe(1);
      expect(crash.output()).toMatch(/workerd exited unexpectedly/);
    } finally {
      await crash.stop();
      await rm(crashState, { recursive: true, force: true });
    }
  });

  it("HOST=0.0.0.0 (reachable from the network) turns the development switches off", async () => {
    const openState = await mkdtemp(join(tmpdir(), "npm-start-open-"));
    const open = await npmStart(["--persist-to", openState], { STIR_OOB_HOME: home, HOST: "0.0.0.0" });
    try {
      expect(open.output()).toMatch(/listening on 0\.0\.0\.0, not loopback: no untokened stores/);
      expect(open.output()).not.toMatch(/ALLOW_UNTOKENED_STORES is on/);
      const { text } = await sealedFor(TN);
      const res = await fetch(storeRequest(open.url, TN, text));
      expect(res.status).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe("TOKEN_MISSING");
      // Control: the loopback-only run serves the demo credentials; this one does not.
      expect((await fetch(`${dev.url}/demo/credentials`)).status).toBe(200);
      expect((await fetch(`${open.url}/demo/credentials`)).status).toBe(404);
    } finally {
      await open.stop();
      await rm(openState, { recursive: true, force: true });
    }
  });

  /** Runs start.mjs with `args` to its exit; its exit code, stdout and stderr. */
  async function refused(args: string[]) {
    const child = spawn(process.execPath, [join(REPO_ROOT, "src/dev/start.mjs"), ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, PORT: String(await freePort()), STIR_OOB_HOME: home },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout?.on("data", (d) => {
      out += d;
    });
    child.stderr?.on("data", (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    return { code, out, err };
  }

  it("an unknown flag without --watch is refused with a message naming it (exit 2), before anything is made", async () => {
    const unknown = await refused(["--local-protocol", "https"]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/--local-protocol: not a flag of npm start.*--relay, --watch\)/);
    // Refused before the demo credentials and the rest are made.
    expect(unknown.out).not.toMatch(/demo credentials made/);
    const badVar = await refused(["--var", "METRICS=off"]);
    expect(badVar.code).toBe(2);
    expect(badVar.err).toMatch(/--var takes KEY:VALUE, got METRICS=off/);
  });
});
