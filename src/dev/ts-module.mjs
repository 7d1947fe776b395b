/**
 * The project's TypeScript for plain Node scripts (`npm start`, the benchmarks): bundled with esbuild
 * into a fresh temporary directory, since Node 20 does not run TypeScript. So dev tooling shares the
 * Worker's own rules (e.g. src/stir/urls.ts `isLoopback`) and a benchmark measures the same code the
 * Worker runs, instead of keeping copies.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { REPO_ROOT } from "./local-server.mjs";

/**
 * Bundles `entry` (a file), or `source` (module text whose imports resolve from the repository root,
 * named `name`.ts in messages), for Node. Resolves with the output file and its directory, which the
 * caller removes once the file is loaded.
 */
export async function bundle({ entry, source, name }) {
  const { build } = await import("esbuild");
  const dir = await mkdtemp(join(tmpdir(), `cps-${name}-`));
  const outfile = join(dir, `${name}.mjs`);
  await build({
    ...(entry
      ? { entryPoints: [entry] }
      : { stdin: { contents: source, resolveDir: REPO_ROOT, loader: "ts", sourcefile: `${name}.ts` } }),
    bundle: true,
    platform: "node",
    format: "esm",
    outfile,
    logLevel: "warning",
  });
  return { dir, outfile };
}

/** Bundles as `bundle` does, imports the result and removes the temporary directory. */
export async function importBundle(options) {
  const { dir, outfile } = await bundle(options);
  try {
    return await import(pathToFileURL(outfile).href);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
