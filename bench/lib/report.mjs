/** Output of the benchmark scripts: progress on stderr, Markdown tables on stdout, JSON result files. */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { REPO_ROOT } from "../../src/dev/local-server.mjs";

/** A progress logger: each message on its own stderr line, after `[tag]`. */
export const progressLog = (tag) => (msg) => process.stderr.write(`[${tag}] ${msg}\n`);

/** n with thousands separators and d decimals; "-" for null or undefined. */
export const fmt = (n, d = 0) =>
  n === null || n === undefined
    ? "-"
    : n.toLocaleString("en", { minimumFractionDigits: d, maximumFractionDigits: d });

/** A Markdown table of strings; columns for which numeric(c) holds are right-aligned. */
export function markdownTable(head, rows, numeric) {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (r) =>
    `| ${r.map((v, c) => (numeric(c) ? v.padStart(widths[c]) : v.padEnd(widths[c]))).join(" | ")} |`;
  return [
    line(head),
    `|${widths.map((w, c) => (numeric(c) ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`,
    ...rows.map(line),
  ].join("\n");
}

/** bench/results/<prefix>-<ISO date with : and . as ->.json */
export const resultFile = (prefix, isoDate) =>
  join(REPO_ROOT, "bench", "results", `${prefix}-${isoDate.replace(/[:.]/g, "-")}.json`);

/** Writes value as indented JSON (and a final newline) to file, making its directory if need be. */
export async function writeJson(file, value) {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}
