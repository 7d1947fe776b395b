/**
 * `npm start` (src/dev/start.mjs) as a local user would run it, and what another local user could see
 * of it: the process list (`ps`), the files it writes, and the log it prints. Also the e2e servers
 * (startLocalServer), which run the same `wrangler dev`.
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

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "npm-start-home-"));
  state = await mkdtemp(join(tmpdir(), "npm-start-state-"));
  ({ rootPem } = await serializeTestPki(await createTestPki()));
  await mkdir(join(home, "ca"), { recursive: true });
  await writeFile(join(home, "ca", "root.pem"), rootPem);
  dev = await npmStart(["--persist-to", state], { STIR_OOB_HOME: home });
});

afterAll(async () => {
  await dev?.stop();
  for (const dir of [home, state]) if (dir) await rm(dir, { recursive: true, force: true });
});

describe("adversary #13: no secret on a process command line", () => {
  it("npm start passes the issuer keys, trust anchors and decoy secret in a 0600 file, not in `ps`", async () => {
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
    // Where they are instead: a file only this user can read.
    const files = envFilesIn(text, state);
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
  it("after a store, a list and a key lookup the output holds no number, and still says Ready", async () => {
    const { text } = await sealedFor(TN);
    expect((await fetch(storeRequest(dev.url, TN, text))).status).toBe(201);
    expect((await fetch(`${dev.url}/cps/${TN}/ppts`)).status).toBe(200);
    await (await fetch(`${dev.url}/keys/${TN}`)).body?.cancel();
    await (await fetch(`${dev.url}/keys?prefix=1202555`)).body?.cancel();
    await (await fetch(`${dev.url}/.well-known/stir-oob?tn=${TN}`)).body?.cancel();
    // wrangler prints a request's line after answering it: give the last ones a moment.
    await new Promise((r) => setTimeout(r, 1_500));
    const out = dev.output();
    // Control: the request lines are there (redacted), so the check below reads real log text.
    expect(out).toMatch(/GET \/cps\/\S*\/ppts/);
    expect(out).toMatch(/Ready on http:\/\/127\.0\.0\.1:\d+/);
    expect(out).not.toMatch(DIGITS_OF_TN);
    expect(out).not.toContain("1202555");
  });
});

describe("adversary #12: `npm start -- --env production` runs the production configuration", () => {
  it("announces no untokened stores, serves, and refuses a store without a token", async () => {
    const prodState = await mkdtemp(join(tmpdir(), "npm-start-prod-"));
    const prod = await npmStart(["--env", "production", "--persist-to", prodState], { STIR_OOB_HOME: home });
    try {
      // Control: the development run does announce it.
      expect(dev.output()).toMatch(/ALLOW_UNTOKENED_STORES is on/);
      expect(prod.output()).not.toMatch(
        /ALLOW_UNTOKENED_STORES is on|stores without a storage token are accepted/,
      );
      expect(prod.output()).toMatch(/ALLOW_UNTOKENED_STORES \("false"\)/);
      const { text } = await sealedFor(TN);
      const res = await fetch(storeRequest(prod.url, TN, text));
      expect(res.status).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe("TOKEN_MISSING");
    } finally {
      await prod.stop();
      await rm(prodState, { recursive: true, force: true });
    }
  });
});
