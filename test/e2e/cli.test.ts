/**
 * The `stir-oob` CLI end to end, as a person runs it: the docs/walkthrough.md flow (Alice calls Bob on
 * a local CPS) command by command through the real launcher (src/cli/stir-oob.mjs), against a real
 * `wrangler dev` server that trusts the CLI's demo CA and requires storage tokens. Exit codes and the
 * human and --json outputs are checked, including the failure paths.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { oneIssuerKeyVar } from "../../src/dev/issuer-key.mjs";
import { type LocalServer, REPO_ROOT, startLocalServer } from "../../src/dev/local-server.mjs";
import { type CliRun, LAUNCHER, runCli } from "../helpers/cli.js";

let home: string;
let server: LocalServer;

/** Runs `stir-oob args...` with the test's home and CPS in the environment (as the walkthrough's defaults). */
function cli(...args: string[]): Promise<CliRun> {
  return runCli(args, { home, cps: server?.url ?? "" });
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "stir-oob-home-"));
  // Walkthrough step 2: the demo CA and the two credentials, before the CPS starts (it must trust the root).
  const ca = await cli("ca", "init", "--issue", "alice=+1-111-555-1111", "--issue", "bob=+2-222-555-2222");
  expect(ca.code, ca.stderr).toBe(0);
  server = await startLocalServer({
    vars: {
      TRUST_ANCHORS_PEM: await readFile(join(home, "ca/root.pem"), "utf8"),
      TOKEN_ISSUER_KEYS: await oneIssuerKeyVar("cli-1"),
      ALLOW_UNTOKENED_STORES: "false",
    },
  });
});

afterAll(async () => {
  await server?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("stir-oob walkthrough: Alice (+1 111 555 1111) calls Bob (+2 222 555 2222)", () => {
  it("keygen + keys register: Bob publishes an encryption key as a signed key record", async () => {
    const gen = await cli("keygen", "--tn", "+2-222-555-2222", "--label", "bob-phone");
    expect(gen.code, gen.stderr).toBe(0);
    expect(gen.stdout).toMatch(/key \S+ for \+22225552222/);
    const reg = await cli("keys", "register", "--tn", "+2-222-555-2222");
    expect(reg.code, reg.stderr).toBe(0);
    expect(reg.stdout).toContain("registered key");
    expect(reg.stdout).toContain("record signed by credential bob");
    const list = await cli("keys", "list", "--tn", "+2-222-555-2222", "--json");
    expect(JSON.parse(list.stdout).keys).toEqual([
      expect.objectContaining({ label: "bob-phone", local: true, signed: true }),
    ]);
  });

  it("tokens fetch: Alice's wallet gets storage tokens ahead of the call", async () => {
    const run = await cli("tokens", "fetch", "--count", "4");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/fetched 4 storage tokens/);
    expect(JSON.parse((await cli("tokens", "status", "--json")).stdout).tokens).toBe(4);
  });

  it("place: the call may proceed once the sealed PASSporT is stored (one token spent)", async () => {
    const run = await cli("place", "--from", "+1-111-555-1111", "--to", "+2-222-555-2222");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("CALL MAY PROCEED");
    expect(run.stdout).toMatch(/steps \(ms\): authorize [\d.]+, discover [\d.]+, sign/);
    expect(JSON.parse((await cli("tokens", "status", "--json")).stdout).tokens).toBe(3);
  });

  it("verify: Bob's verdict is VERIFIED (exit 0), with the PASSporT's origid", async () => {
    const run = await cli("verify", "--to", "+2-222-555-2222", "--calling", "+1-111-555-1111");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^✔ VERIFIED {2}call \+11115551111 → \+22225552222/);
    expect(run.stdout).toMatch(/origid [0-9a-f-]{36}/);
  });

  it("verify the same stored PASSporT for a second call: REPLAYED at step 5 (exit 1); --allow-forking verifies", async () => {
    const again = await cli("verify", "--to", "+2-222-555-2222", "--calling", "+1-111-555-1111", "--json");
    expect(again.code).toBe(1);
    const replayed = JSON.parse(again.stdout);
    expect(replayed.verdict).toBe("failed");
    expect(replayed.candidates[0].failure).toMatchObject({ step: 5, code: "REPLAYED" });
    const human = await cli("verify", "--to", "+2-222-555-2222", "--calling", "+1-111-555-1111");
    expect(human.stdout).toContain("step 5 REPLAYED");
    const fork = await cli(
      "verify",
      "--to",
      "+2-222-555-2222",
      "--calling",
      "+1-111-555-1111",
      "--allow-forking",
      "--json",
    );
    expect(fork.code, fork.stdout + fork.stderr).toBe(0);
    const json = JSON.parse(fork.stdout);
    expect(json.verdict).toBe("verified");
    expect(json.verified.orig).toBe("11115551111");
    expect(json.origid).toMatch(/^[0-9a-f-]{36}$/);
  }, 120_000);

  it("verify a spoofed call (another calling number): FAILED with the orig mismatch, exit 1", async () => {
    const run = await cli("verify", "--to", "+2-222-555-2222", "--calling", "+1-111-555-6666");
    expect(run.code).toBe(1);
    expect(run.stdout).toContain("✘ FAILED");
    expect(run.stdout).toContain("step 3 ORIG_MISMATCH");
  });

  it("verify with nothing stored for the number: NO PASSPORT, exit 2", async () => {
    expect((await cli("ca", "issue", "carol", "--tn", "+3-333-555-3333")).code).toBe(0);
    expect((await cli("keygen", "--tn", "+3-333-555-3333")).code).toBe(0);
    const run = await cli("verify", "--to", "+3-333-555-3333", "--calling", "+1-111-555-1111");
    expect(run.code).toBe(2);
    expect(run.stdout).toContain("NO PASSPORT");
  });

  it("gateway fetch writes an Identity header (§5.3); gateway store puts one back out of band (§5.4)", async () => {
    // A fresh call: the first one's PASSporT is past the 60 s freshness window by now on a slow machine.
    expect((await cli("place", "--from", "+1-111-555-1111", "--to", "+2-222-555-2222")).code).toBe(0);
    const fetched = await cli("gateway", "fetch", "--to", "+2-222-555-2222", "--calling", "+1-111-555-1111");
    expect(fetched.code, fetched.stderr).toBe(0);
    const line = fetched.stdout.split("\n").find((l) => l.startsWith("Identity: "));
    expect(line).toMatch(
      /^Identity: [\w-]+\.[\w-]+\.[\w-]+;info=<https:\/\/certs\.stir-oob\.test\/alice\.pem>;alg=ES256;ppt=shaken$/,
    );
    const stored = await cli("gateway", "store", "--identity", line ?? "", "--json");
    expect(stored.code, stored.stderr).toBe(0);
    expect(JSON.parse(stored.stdout).stored).toHaveLength(1);
  });

  it("watch: a PASSporT stored while Carol watches is pushed and reported VERIFIED (push, §5.5)", async () => {
    // Carol's number has held nothing so far (the no-passport case), so only the call below can count.
    expect((await cli("keys", "register", "--tn", "+3-333-555-3333")).code).toBe(0);
    const child = spawn(
      process.execPath,
      [LAUNCHER, "watch", "--to", "+3-333-555-3333", "--count", "1", "--timeout", "40"],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, STIR_OOB_HOME: home, STIR_OOB_CPS: server.url, NO_COLOR: "1" },
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    const watching = new Promise<void>((resolve) => {
      child.stderr.on("data", (d) => {
        stderr += d;
        if (stderr.includes("watching")) resolve();
      });
    });
    const exited = new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? 70)));
    await Promise.race([watching, exited]);
    const placed = await cli("place", "--from", "+1-111-555-1111", "--to", "+3-333-555-3333");
    expect(placed.code, placed.stderr).toBe(0);
    expect(await exited, stderr).toBe(0);
    expect(stdout).toMatch(/✔ VERIFIED {2}incoming call from \+11115551111 to \+33335553333/);
  });

  it("keys rotate (--no-wait), keys prune and keys remove: a call between verifies, the old key goes", async () => {
    const before = JSON.parse((await cli("keys", "list", "--tn", "+2-222-555-2222", "--json")).stdout).keys;
    const oldKid = before[0].kid as string;
    const rot = await cli(
      "keys",
      "rotate",
      "--tn",
      "+2-222-555-2222",
      "--no-wait",
      "--overlap",
      "0",
      "--json",
    );
    expect(rot.code, rot.stderr).toBe(0);
    const rotated = JSON.parse(rot.stdout);
    expect(rotated.old).toEqual([oldKid]);
    const kids = JSON.parse((await cli("keys", "list", "--tn", "+2-222-555-2222", "--json")).stdout).keys.map(
      (k: { kid: string }) => k.kid,
    );
    expect(kids.sort()).toEqual([oldKid, rotated.new.kid].sort());
    const placed = await cli("place", "--from", "+1-111-555-1111", "--to", "+2-222-555-2222", "--json");
    expect(placed.code, placed.stderr).toBe(0);
    expect(JSON.parse(placed.stdout).stored).toHaveLength(2); // one copy per key: old and new
    const verified = await cli("verify", "--to", "+2-222-555-2222", "--calling", "+1-111-555-1111");
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const pruned = await cli("keys", "prune", "--tn", "+2-222-555-2222");
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toContain(`retired key ${oldKid}`);
    const after = JSON.parse((await cli("keys", "list", "--tn", "+2-222-555-2222", "--json")).stdout).keys;
    expect(after.map((k: { kid: string }) => k.kid)).toEqual([rotated.new.kid]);
    const removed = await cli("keys", "remove", "--tn", "+3-333-555-3333");
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/removed 1 key of \+33335553333/);
    expect(JSON.parse((await cli("keys", "list", "--tn", "+3-333-555-3333", "--json")).stdout).keys).toEqual(
      [],
    );
    expect((await cli("keys", "rotate", "--tn", "+2-222-555-2222", "--overlap", "-1")).code).toBe(64);
    expect((await cli("keys", "frobnicate", "--tn", "+2-222-555-2222")).code).toBe(64);
    expect((await cli("keys", "--help")).stdout).toMatch(/keys rotate --tn/);
  }, 240_000);

  it("usage errors exit 64, an unreachable CPS exits 69, --help exits 0 for every command", async () => {
    const usage = await cli("place", "--from", "+1-111-555-1111");
    expect(usage.code).toBe(64);
    expect(usage.stderr).toContain("--to");
    expect((await cli("verify", "--to", "not a number", "--calling", "+1-111-555-1111")).code).toBe(64);
    expect((await cli("frobnicate")).code).toBe(64);
    const down = await cli(
      "--cps",
      "http://127.0.0.1:9",
      "verify",
      "--to",
      "+2-222-555-2222",
      "--calling",
      "+1-111-555-1111",
    );
    expect(down.code).toBe(69);
    expect(down.stderr).toContain("Could not reach");
    for (const cmd of [
      [],
      ["ca"],
      ["keygen"],
      ["keys"],
      ["tokens"],
      ["place"],
      ["verify"],
      ["gateway"],
      ["watch"],
    ]) {
      const help = await cli(...cmd, "--help");
      expect(help.code, cmd.join(" ")).toBe(0);
      expect(help.stdout).toMatch(/^stir-oob/);
    }
  });
});
