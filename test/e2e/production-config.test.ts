/**
 * What `wrangler deploy` would ship, from `wrangler deploy --dry-run` (bundle and binding list, no
 * network): the top level of wrangler.toml and `[env.production]` are both the production
 * configuration, with no development switch on, and the bundle holds the Worker's own code only: no
 * bench, dev, CLI or test code (docs/design.md, layer rules: src/ Worker code never imports them).
 *
 * CPS_TREE=<dir> runs the same checks against another checkout (with a node_modules symlink), e.g.
 * the tree before the fix, to see them fail there.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT, wranglerEnv } from "../../src/dev/local-server.mjs";

const TREE = process.env.CPS_TREE ?? REPO_ROOT;
const dirs: string[] = [];

interface DryRun {
  output: string;
  bundle: string;
  sources: string[];
}

/** One dry run per environment, shared by the tests below (each takes seconds). */
const dryRuns = new Map<string, Promise<DryRun>>();
function dryRun(envName: string): Promise<DryRun> {
  let run = dryRuns.get(envName);
  if (!run) {
    run = runDryRun(envName);
    dryRuns.set(envName, run);
  }
  return run;
}

async function runDryRun(envName: string): Promise<DryRun> {
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
  // The source map names every module in the bundle, as a path relative to outdir.
  const sources: string[] = [];
  for (const f of await readdir(outdir)) {
    if (f.endsWith(".js")) bundle += await readFile(join(outdir, f), "utf8");
    if (f.endsWith(".js.map")) {
      const map = JSON.parse(await readFile(join(outdir, f), "utf8")) as { sources: string[] };
      sources.push(...map.sources.map((s) => relative(TREE, resolve(outdir, s)).replaceAll("\\", "/")));
    }
  }
  return { output, bundle, sources };
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
    expect(output).not.toMatch(
      /env\.(TOKEN_ISSUER_KEYS|TRUST_ANCHORS_PEM|DECOY_SECRET|METRICS_TOKEN_SHA256|OHTTP_KEYS) /,
    );
    expect(bundle.length).toBeGreaterThan(100_000);
    expect(bundle).not.toMatch(/BaselineStore|_bench\/baseline|benchBaseline|BASELINE_STORE/);
    // The web pages ship as static assets (wrangler.toml [assets], built by its [build]); the demo's
    // TEST-ONLY credentials never do: no DEMO_CREDENTIALS var, no dev code in the bundle (docs/web.md).
    expect(output).toMatch(/Read \d+ files from the assets directory \S*dist[\\/]web/);
    expect(output).not.toMatch(/DEMO_CREDENTIALS/);
    expect(bundle).not.toMatch(/makeDemoCredentials|DEMO_NUMBERS/);
  });

  it.each([
    ["the top level", ""],
    ["[env.production]", "production"],
  ])("%s: the bundle is the Worker's code only, with its Durable Object classes", async (_name, envName) => {
    const { output, bundle, sources } = await dryRun(envName);
    expect(output).not.toMatch(/PUSH_BLOCK_INDEX/);
    expect(bundle).not.toMatch(/PUSH_BLOCK_INDEX/);
    // Control: the map lists the Worker's modules, so an absent path below means absent code.
    const ours = sources.filter((s) => !s.includes("node_modules/"));
    expect(ours).toContain("src/app.ts");
    expect(ours).toContain("src/durable-objects/passport-queue.ts");
    // The OHTTP gateway is in the CPS (off without OHTTP_KEYS); the relay is its own Worker.
    expect(ours).toContain("src/routes/ohttp.ts");
    for (const s of ours) {
      expect(s).toMatch(/^src\//);
      expect(s).not.toMatch(/^src\/(dev|cli|relay|client)\//);
      expect(s).not.toMatch(/test-pki/);
    }
    // Markers of bench, dev and test-only code, in case a module came in without a map entry.
    expect(bundle).not.toMatch(/baseline-worker|issuer-key\.mjs|redact-log|local-server/);
    expect(bundle).not.toMatch(/createTestPki|issueTestLeaf|TEST_PKI|FUZZ_RUNS/);
    // The Durable Object classes wrangler.toml binds are exported by the bundle.
    const exported = [...bundle.matchAll(/^export\s*\{([^}]*)\}/gm)].map((m) => m[1]).join(",");
    expect(exported).toMatch(/\bas default\b/);
    for (const name of ["PassportQueue", "BlockQueue", "ReplayGuard", "TokenLedger", "MetricsHub"]) {
      expect(exported).toMatch(new RegExp(`\\b${name}\\b`));
    }
  });

  it("a migration deletes the bench baseline's Durable Object class from the CPS Worker", async () => {
    const toml = await readFile(join(TREE, "wrangler.toml"), "utf8");
    expect(toml).toMatch(/deleted_classes\s*=\s*\[\s*"BaselineStore"\s*\]/);
  });
});
