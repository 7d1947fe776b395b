/**
 * The load-and-soak run (bench/load.mjs, `npm run load`; issue #8) at CI size: 10 s of open-loop
 * traffic at 20 requests/s against its own `wrangler dev` with storage tokens required and a 5 s TTL,
 * run as a child process as a person runs it. Its exit code and JSON must show every stored blob served
 * while live and gone after expiry, no 5xx, every kind of request sent and the offered rate achieved.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../src/dev/local-server.mjs";

const SCRIPT = join(REPO_ROOT, "bench/load.mjs");
const MIX = ["issue", "store", "get-id", "list-live", "list-empty"] as const;

interface Operation {
  offeredPerSecond: number | null;
  achievedPerSecond: number | null;
  sent: number;
  ok: number;
  errorCount: number;
  errors: Record<string, number>;
  latencyMs: { p50: number | null; p99: number | null };
}
interface LoadResult {
  exitCode: number;
  failures: string[];
  fiveXX: number;
  operations: Record<string, Operation>;
  verification: {
    blobsStored: number;
    blobsLost: number;
    blobsLingering: number;
    blobsCorrupt: number;
    blobsUnverified: number;
    liveById: number;
    liveInList: number;
    goneById: number;
    goneFromList: number;
  };
  config: { vars: Record<string, string> };
  generator: { inFlightCapHits: number };
}

let dir: string;
let run: { code: number; stdout: string; stderr: string };
let result: LoadResult;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cps-load-test-"));
  const out = join(dir, "load.json");
  run = await new Promise((resolve) => {
    execFile(
      process.execPath,
      [SCRIPT, "--duration", "10", "--rate", "20", "--ttl", "5", "--out", out],
      { cwd: REPO_ROOT, timeout: 80_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 70) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
  result = JSON.parse(await readFile(out, "utf8")) as LoadResult;
}, 90_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("npm run load, short: 10 s at 20 requests/s, TTL 5 s, storage tokens required", () => {
  it("exits 0 and says PASS, with the same verdict in its JSON", () => {
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain("PASS");
    expect(result.exitCode).toBe(0);
    expect(result.failures).toEqual([]);
    expect(result.config.vars.ALLOW_UNTOKENED_STORES).toBe("false");
    expect(result.config.vars.PASSPORT_TTL_SECONDS).toBe("5");
  });

  it("every stored blob was served (by id and in its list) while live and gone from both after expiry", () => {
    const v = result.verification;
    expect(v.blobsStored).toBeGreaterThan(20); // 18% of 200 requests are stores
    expect(v.blobsLost).toBe(0);
    expect(v.blobsLingering).toBe(0);
    expect(v.blobsCorrupt).toBe(0);
    expect(v.blobsUnverified).toBe(0);
    for (const n of [v.liveById, v.liveInList, v.goneById, v.goneFromList]) expect(n).toBe(v.blobsStored);
  });

  it("no 5xx and no unexpected answer of any kind", () => {
    expect(result.fiveXX).toBe(0);
    for (const [op, o] of Object.entries(result.operations)) {
      const unexpected = Object.keys(o.errors).filter((k) => !k.startsWith("skipped: cap"));
      expect(unexpected, op).toEqual([]);
    }
  });

  it.each(MIX)("%s happened, at no less than 80% of its offered rate", (op) => {
    const o = result.operations[op];
    expect(o?.sent).toBeGreaterThan(0);
    expect(o?.latencyMs.p50).not.toBeNull();
    expect(o?.achievedPerSecond).toBeGreaterThanOrEqual(0.8 * (o?.offeredPerSecond ?? Number.NaN));
    expect(o?.achievedPerSecond).toBeLessThanOrEqual(1.01 * (o?.offeredPerSecond ?? Number.NaN));
  });

  it("issuance went through the client wallet (GET /tokens/keys, then POST /tokens) within the run", () => {
    expect(result.operations["token-keys"]?.ok).toBe(result.operations.issue?.ok);
  });
});
