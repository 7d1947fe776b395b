#!/usr/bin/env node
/**
 * `tsc -p tsconfig.web.json` for the web pages (web/), failing on errors in web/ only. The client
 * library the pages bundle is checked in its own program (tsconfig.worker.json, the runtime types it is
 * written against); under the DOM library's stricter typed-array types (TS 5.7+, `BufferSource` wants
 * an ArrayBuffer-backed view) some of its files do not compile, which says nothing about the pages.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "./local-server.mjs";

const tsc = join(REPO_ROOT, "node_modules/typescript/bin/tsc");
const run = spawnSync(process.execPath, [tsc, "-p", "tsconfig.web.json", "--pretty", "false"], {
  cwd: REPO_ROOT,
  encoding: "utf8",
});
// One diagnostic per line, "path(line,col): error TSnnnn: ..." followed by indented continuation lines.
const ours = [];
let keep = false;
for (const line of run.stdout.split("\n")) {
  if (/^\S.*\(\d+,\d+\): error /.test(line)) keep = line.startsWith("web/");
  else if (!/^\s/.test(line)) keep = false;
  if (keep) ours.push(line);
}
if (ours.length > 0 || (run.status !== 0 && !/\): error /.test(run.stdout))) {
  process.stdout.write(ours.length > 0 ? `${ours.join("\n")}\n` : run.stdout + run.stderr);
  process.exit(1);
}
