#!/usr/bin/env node
// npm 11.19 writes package-lock.json without the optional platform packages of other systems
// (biome's and workerd's darwin/win32/musl binaries), and then its own `npm ci` refuses that lockfile
// ("Missing: @biomejs/cli-darwin-x64@ from lock file"). This adds the missing entries, with the
// os/cpu/integrity the registry publishes, where npm would place them. Run it after any
// `npm install <pkg>`: `node .ci/fix-lockfile.mjs`. It asks the registry only for missing entries.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const packages = lock.packages;

/** The entry npm would resolve `name` to from the package at `from`, walking up node_modules. */
function resolve(from, name) {
  let dir = from;
  for (;;) {
    const candidate = `${dir ? `${dir}/` : ""}node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (!dir) return undefined;
    const cut = dir.lastIndexOf("node_modules/");
    dir = cut <= 0 ? "" : dir.slice(0, cut - 1);
  }
}

/** What the registry says of one version; {} when it has none (some optional platforms are never published). */
function registryView(name, version) {
  try {
    const args = [
      "view",
      `${name}@${version}`,
      "os",
      "cpu",
      "license",
      "engines",
      "dist.integrity",
      "--json",
    ];
    return JSON.parse(
      execFileSync("npm", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }) || "{}",
    );
  } catch {
    return {};
  }
}

let added = 0;
for (const [path, meta] of Object.entries({ ...packages })) {
  for (const [name, version] of Object.entries(meta.optionalDependencies ?? {})) {
    const found = resolve(path, name);
    if (found && (packages[found].version === version || !/^\d/.test(version))) continue;
    // Beside the dependent (its own node_modules directory), as npm nests a version conflict.
    const cut = path.lastIndexOf("node_modules/");
    const at = `${cut < 0 ? "" : path.slice(0, cut)}node_modules/${name}`;
    const view = registryView(name, version);
    const entry = { version, optional: true };
    if (view["dist.integrity"]) entry.integrity = view["dist.integrity"];
    for (const key of ["license", "cpu", "os", "engines"]) if (view[key]) entry[key] = view[key];
    packages[at] = entry;
    added++;
    console.log(`added ${at}@${version}`);
  }
}
if (added > 0) {
  lock.packages = Object.fromEntries(
    Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)),
  );
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
}
console.log(
  added > 0 ? `package-lock.json: ${added} optional platform entries added` : "package-lock.json: complete",
);
