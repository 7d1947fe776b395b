#!/usr/bin/env node
/**
 * Builds the web pages (docs/web.md) from `web/` into `dist/web/`, the directory wrangler.toml's
 * `[assets]` serves. wrangler.toml's `[build]` runs it before every `wrangler dev` (`npm start --
 * --watch`, the e2e tests of `npm test`) and `wrangler deploy`, and `npm start` runs it itself
 * (src/dev/miniflare-server.mjs), so a fresh clone serves the pages. The integration
 * tests (the vitest Workers plugin) do not read the assets and need no build.
 *
 * Convention, one folder per page (`web/<page>/`):
 *   index.html   the page; it loads `/assets/<page>.js` (and `/assets/<page>.css` when main.ts imports CSS)
 *   main.ts      entry, bundled with everything it imports (the client library, web/common/, CSS):
 *                nothing is fetched from a CDN at run time
 * and PAGES below maps the folder to its URL. A page whose folder does not exist yet is skipped.
 *
 * Plain Node ESM so it runs before anything is built. Each output file is written to a temporary
 * name and renamed over the old one, so builds running at the same time (several test runs) never
 * leave a half-written file for a server to serve, and only when its bytes changed.
 *
 * A build whose inputs (every file under web/ and src/, this script, the lockfile: path, size and
 * mtime) are those of the last build does nothing at all: every e2e test starts its own `wrangler
 * dev`, which runs `[build]`, and rewriting dist/web/ there would make every other running server
 * reload its assets (and cost each start seconds of esbuild).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const WEB_SRC = join(REPO_ROOT, "web");
export const WEB_OUT = join(REPO_ROOT, "dist/web");
/** Outside dist/web, so it is never served. */
const STAMP = join(REPO_ROOT, "dist/web-build-stamp");

/** Page folder -> the file under dist/web that serves its URL (`demo.html` serves `/demo`). */
export const PAGES = [
  { page: "demo", file: "demo.html", url: "/demo" },
  { page: "console", file: "console.html", url: "/console" },
  { page: "docs-api", file: "docs/api.html", url: "/docs/api" },
];

/**
 * Headers for every asset (Workers static assets read `_headers`): the pages load only their own
 * bundles and talk only to this origin; no framing.
 */
const HEADERS = `/*
  Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'
  X-Content-Type-Options: nosniff
  Referrer-Policy: no-referrer
`;

/** What the pages are built from, as one hash of each file's path, size and mtime. */
async function inputStamp() {
  const lines = [];
  const walk = async (dir) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const s = await stat(path);
        lines.push(`${relative(REPO_ROOT, path)}:${s.size}:${s.mtimeMs}`);
      }
    }
  };
  await walk(WEB_SRC);
  await walk(join(REPO_ROOT, "src"));
  for (const file of ["package-lock.json"]) {
    const path = join(REPO_ROOT, file);
    if (existsSync(path)) {
      const s = await stat(path);
      lines.push(`${file}:${s.size}:${s.mtimeMs}`);
    }
  }
  return createHash("sha256").update(lines.sort().join("\n")).digest("hex");
}

async function writeAtomic(file, data) {
  const bytes = typeof data === "string" ? Buffer.from(data) : Buffer.from(data);
  if (existsSync(file) && (await readFile(file)).equals(bytes)) return; // unchanged: no event for watchers
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
}

/**
 * Builds every page present. Resolves with the URLs built. Throws (with esbuild's messages) when a
 * page does not compile.
 */
export async function buildWeb({ quiet = true } = {}) {
  const pages = PAGES.filter((p) => existsSync(join(WEB_SRC, p.page, "main.ts")));
  const stamp = await inputStamp();
  const built =
    existsSync(STAMP) &&
    (await readFile(STAMP, "utf8")) === stamp &&
    pages.every((p) => existsSync(join(WEB_OUT, p.file)));
  if (built) return pages.map((p) => p.url);
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: Object.fromEntries(pages.map((p) => [p.page, join(WEB_SRC, p.page, "main.ts")])),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    // The client library's "browser" export condition (package.json).
    conditions: ["browser"],
    minify: true,
    sourcemap: false,
    legalComments: "none",
    // @hpke/common imports Node's `crypto` behind a guard that never takes that branch in a browser.
    external: ["crypto", "node:crypto"],
    write: false,
    outdir: join(WEB_OUT, "assets"),
    logLevel: quiet ? "error" : "warning",
  });
  for (const out of result.outputFiles) await writeAtomic(out.path, out.contents);
  for (const p of pages) {
    await writeAtomic(join(WEB_OUT, p.file), await readFile(join(WEB_SRC, p.page, "index.html")));
  }
  await writeAtomic(join(WEB_OUT, "_headers"), HEADERS);
  // Every page links it (`<link rel="icon" href="/favicon.svg">`); without one the browser asks for
  // /favicon.ico, whose 404 shows as a console error.
  await writeAtomic(join(WEB_OUT, "favicon.svg"), await readFile(join(WEB_SRC, "common/favicon.svg")));
  // Leftovers of a page since removed would otherwise still be served.
  const keep = new Set([...result.outputFiles.map((o) => o.path)]);
  for (const p of pages) keep.add(join(WEB_OUT, p.file));
  const assets = join(WEB_OUT, "assets");
  for (const name of await readdir(assets)) {
    const file = join(assets, name);
    if (!keep.has(file) && !name.endsWith(".tmp")) await rm(file, { force: true });
  }
  await writeAtomic(STAMP, stamp);
  if (!quiet) {
    for (const o of result.outputFiles) {
      console.log(`build-web: ${relative(REPO_ROOT, o.path)} ${(o.contents.length / 1024).toFixed(0)} KiB`);
    }
  }
  return pages.map((p) => p.url);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildWeb({ quiet: !process.argv.includes("--verbose") }).then(
    (urls) => console.log(`build-web: ${urls.join(", ") || "no pages"} -> ${relative(REPO_ROOT, WEB_OUT)}/`),
    (err) => {
      console.error(`build-web: ${err.message}`);
      process.exit(1);
    },
  );
}
