#!/usr/bin/env node
/**
 * `npm run bench:client`: bundles bench/client.ts with esbuild (dependencies external) into
 * .wrangler/bench/client.mjs (two levels down, so src/dev/local-server.mjs still finds the repository
 * root) and runs it. Progress on stderr, the JSON figures on stdout.
 */
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, ".wrangler/bench/client.mjs");
await build({
  entryPoints: [join(root, "bench/client.ts")],
  outfile: out,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  logLevel: "error",
});
const run = spawnSync(process.execPath, [out], { stdio: "inherit", env: process.env });
process.exit(run.status ?? 70);
