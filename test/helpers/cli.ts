/**
 * Running the real `stir-oob` launcher as a separate process, as a user does, for e2e tests: the
 * home and CPS go in through the environment (the walkthrough's defaults), colours off.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../src/dev/local-server.mjs";

export const LAUNCHER = join(REPO_ROOT, "src/cli/stir-oob.mjs");

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `stir-oob args...` with `home` (and `cps` and the OHTTP `relay`, when given) in the
 * environment; never rejects.
 */
export function runCli(
  args: readonly string[],
  env: { home: string; cps?: string; relay?: string },
): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [LAUNCHER, ...args],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          STIR_OOB_HOME: env.home,
          ...(env.cps === undefined ? {} : { STIR_OOB_CPS: env.cps }),
          ...(env.relay === undefined ? {} : { STIR_OOB_RELAY: env.relay }),
          NO_COLOR: "1",
        },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 70) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * A fresh CLI home (a temp dir named `prefix`...) holding the demo CA, TEST ONLY keys, with one
 * credential per `name: number` of `issue` (`stir-oob ca init --issue name=number ...`), and the CA's
 * root PEM, which a CPS must trust for the CLI's calls. Throws, leaving nothing behind, when `ca init`
 * fails.
 */
export async function cliHomeWithCa(
  prefix: string,
  issue: Readonly<Record<string, string>>,
): Promise<{ home: string; rootPem: string }> {
  const home = await mkdtemp(join(tmpdir(), prefix));
  const args = ["ca", "init", ...Object.entries(issue).flatMap(([name, tn]) => ["--issue", `${name}=${tn}`])];
  const run = await runCli(args, { home });
  if (run.code !== 0) {
    await rm(home, { recursive: true, force: true });
    throw new Error(`stir-oob ${args.join(" ")} exited ${run.code}: ${run.stderr}`);
  }
  return { home, rootPem: await readFile(join(home, "ca/root.pem"), "utf8") };
}
