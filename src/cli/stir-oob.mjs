#!/usr/bin/env node
/**
 * Launcher of the `stir-oob` CLI (package.json "bin"). The CLI is TypeScript (src/cli/main.ts); this
 * file bundles it with esbuild into .wrangler/cli/stir-oob.mjs when that is missing or older than any
 * file under src/, then runs it. Dependencies stay external (resolved from node_modules at run time),
 * so a build takes well under a second. Works from a fresh clone after `npm ci`: no install script.
 */
import { mkdir, readdir, rename, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const entry = join(root, "src/cli/main.ts");
const out = join(root, ".wrangler/cli/stir-oob.mjs");

async function newestMtime(dir) {
  let newest = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, await newestMtime(p));
    else if (/\.(ts|mts|mjs|js|json)$/.test(e.name)) newest = Math.max(newest, (await stat(p)).mtimeMs);
  }
  return newest;
}

async function build() {
  const built = await stat(out).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  if (built > (await newestMtime(join(root, "src")))) return;
  const esbuild = await import("esbuild");
  await mkdir(dirname(out), { recursive: true });
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile: out,
    write: false,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    sourcemap: "inline",
    logLevel: "error",
    banner: { js: "// Built from src/cli/main.ts by src/cli/stir-oob.mjs; do not edit." },
  });
  // Write then rename: several CLI processes may rebuild at once, and none may import a half file.
  const tmp = `${out}.${process.pid}.tmp`;
  await writeFile(tmp, result.outputFiles[0].contents);
  await rename(tmp, out);
}

try {
  await build();
} catch (err) {
  process.stderr.write(`stir-oob: could not build the CLI: ${err?.message ?? err}\n`);
  process.exit(70);
}
// Node 20 has WebSocket only behind a flag; `watch` needs it, so run again with the flag there.
if (
  typeof WebSocket === "undefined" &&
  process.argv.includes("watch") &&
  !process.execArgv.includes("--experimental-websocket")
) {
  const { spawnSync } = await import("node:child_process");
  const child = spawnSync(
    process.execPath,
    ["--experimental-websocket", ...process.execArgv, ...process.argv.slice(1)],
    {
      stdio: "inherit",
    },
  );
  process.exit(child.status ?? 70);
}
const { main } = await import(pathToFileURL(out).href);
process.exitCode = await main(process.argv.slice(2));
