/**
 * Imports a TypeScript module of this repository from plain Node ESM, which cannot import .ts (Node
 * 20): esbuild bundles it in memory and Node imports the bundle from a data: URL. So dev tooling
 * shares small pure rules with the Worker (e.g. src/stir/urls.ts `isLoopback`) instead of keeping
 * its own copy. Everything is bundled (a data: URL module can import nothing): pure code only.
 * Types: ts-module.d.mts.
 */
import { join } from "node:path";
import { REPO_ROOT } from "./local-server.mjs";

/** The module at `path` (relative to the repository), e.g. "src/stir/urls.ts". */
export async function importTs(path) {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [join(REPO_ROOT, path)],
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "node20",
    logLevel: "error",
  });
  const code = result.outputFiles[0].text;
  return import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`);
}
