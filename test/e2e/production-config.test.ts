/**
 * What `wrangler deploy` would ship, from `wrangler deploy --dry-run` (bundle and binding list, no
 * network): the top level of wrangler.toml and `[env.production]` are both the production
 * configuration, with no development switch on and no bench code.
 *
 * CPS_TREE=<dir> runs the same checks against another checkout (with a node_modules symlink), e.g.
 * the tree before the fix, to see them fail there.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT, wranglerEnv } from "../../src/dev/local-server.mjs";

const TREE = process.env.CPS_TREE ?? REPO_ROOT;
const dirs: string[] = [];

async function dryRun(envName: string): Promise<{ output: string; bundle: string }> {
  const outdir = await mkdtemp(join(tmpdir(), "cps-dry-run-"));
  dirs.push(outdir);
  const output = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      [
        join(TREE, "node_modules/wrangler/bin/wrangler.js"),
        "deploy",
        "--dry-run",
        "--outdir",
        outdir,
        `--env=${envName}`,
      ],
      { cwd: TREE, env: { ...wranglerEnv(), NO_COLOR: "1" }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout + stderr),
    ),
  );
  let bundle = "";
  for (const f of await readdir(outdir))
    if (f.endsWith(".js")) bundle += await readFile(join(outdir, f), "utf8");
  return { output, bundle };
}

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("adversary #12: `wrangler deploy` ships the production configuration only", () => {
  it.each([
    ["the top level (`wrangler deploy` without --env)", ""],
    ["[env.production]", "production"],
  ])("%s: no dev switch on, no bench code, no secret as a plain var", async (_name, envName) => {
    const { output, bundle } = await dryRun(envName);
    // Control: the binding list was printed, so the checks below read it.
    expect(output).toMatch(/env\.PASSPORT_QUEUE \(PassportQueue\)/);
    expect(output).toMatch(/env\.ALLOW_UNTOKENED_STORES \("false"\)/);
    expect(output).toMatch(/env\.ALLOW_LOOPBACK_X5U \("false"\)/);
    expect(output).not.toMatch(/BASELINE_STORE|BENCH_BASELINE/);
    // A var named like a secret would clash with `wrangler secret put` of it at deploy.
    expect(output).not.toMatch(/env\.(TOKEN_ISSUER_KEYS|TRUST_ANCHORS_PEM|DECOY_SECRET) /);
    expect(bundle.length).toBeGreaterThan(100_000);
    expect(bundle).not.toMatch(/BaselineStore|_bench\/baseline|benchBaseline|BASELINE_STORE/);
  });

  it("a migration deletes the bench baseline's Durable Object class from the CPS Worker", async () => {
    const toml = await readFile(join(TREE, "wrangler.toml"), "utf8");
    expect(toml).toMatch(/deleted_classes\s*=\s*\[\s*"BaselineStore"\s*\]/);
  });
});
