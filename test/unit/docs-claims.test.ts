/**
 * The docs' claims against the tree: docs/conformance.md and docs/threat-model.md name the tests that
 * show each claim, so every named test file must exist, and every adversary test the threat model
 * lists must have its `describe("adversary #N: …")` block in the files it names. Sentences that claim
 * more than the code does must not come back. The design lives in the repository (docs/design.md):
 * nothing cites a design file outside it, and every "docs/design.md invariant N" names an invariant
 * the design defines.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

function docs(): { path: string; text: string }[] {
  const files = ["README.md", ...readdirSync(join(ROOT, "docs")).map((f) => `docs/${f}`)];
  return files.filter((f) => f.endsWith(".md")).map((path) => ({ path, text: read(path) }));
}

/** Test files a document cites, as `test/….test.ts` paths. */
function citedTests(text: string): string[] {
  return [...new Set(text.match(/test\/[\w./-]+\.test\.ts/g) ?? [])];
}

describe("adversary #17: docs that overstate", () => {
  it.each([
    ["polling reveals nothing", /polling reveals nothing/i],
    ["blobs indistinguishable from random", /indistinguishable from random\b/i],
    ["the CPS learns no call metadata", /learns no call metadata/i],
    ["revocation that nothing checks", /until it is revoked/i],
    ["dummies that never repeat", /dummies (are )?never repeat/i],
  ])("no document claims %s", (_what, pattern) => {
    const offenders = docs()
      .filter((d) => pattern.test(d.text))
      .map((d) => d.path);
    expect(offenders).toEqual([]);
  });

  it.each(["docs/conformance.md", "docs/threat-model.md"])("every test file %s names exists", (doc) => {
    const cited = citedTests(read(doc));
    expect(cited.length).toBeGreaterThan(5);
    expect(cited.filter((path) => !existsSync(join(ROOT, path)))).toEqual([]);
  });

  it("every finding in the threat model's adversary table has its describe block in the files it names", () => {
    const table = read("docs/threat-model.md").split("## The adversary tests")[1] ?? "";
    const rows = [...table.matchAll(/^\| (\d+) \| [^|]+\| ([^|]+)\|/gm)];
    // Numbered 1..n with none skipped, and none of the 18 findings so far dropped.
    expect(rows.length).toBeGreaterThanOrEqual(18);
    expect(rows.map((r) => Number(r[1]))).toEqual(Array.from({ length: rows.length }, (_, i) => i + 1));
    const missing: string[] = [];
    for (const [, n, cell] of rows) {
      for (const path of citedTests(cell ?? "")) {
        if (!read(path).includes(`"adversary #${n}:`)) missing.push(`#${n} in ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

/** Every file under `dirs` (recursively) plus the named top-level files, as repository paths. */
function treeFiles(dirs: string[], files: string[]): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(ROOT, dir)).flatMap((name) => {
      const path = `${dir}/${name}`;
      return statSync(join(ROOT, path)).isDirectory() ? walk(path) : [path];
    });
  return [...dirs.flatMap(walk), ...files];
}

/** The invariant numbers docs/design.md defines: `N. **…**` items of its invariants section. */
function designInvariants(): number[] {
  const section = read("docs/design.md")
    .split(/^## Privacy and security invariants/m)[1]
    ?.split(/^## /m)[0];
  return [...(section ?? "").matchAll(/^(\d+)\. \*\*/gm)].map((m) => Number(m[1]));
}

describe("the design lives in the repository (docs/design.md)", () => {
  const files = treeFiles(["src", "test", "bench", "docs"], ["README.md", "BENCHMARKS.md"]).map((path) => ({
    path,
    text: read(path),
  }));

  it("no file cites a design file outside the repository", () => {
    // Spelled in two parts so that this file does not cite it either.
    const outside = ["DESIGN", "md"].join(".");
    expect(files.filter((f) => f.text.includes(outside)).map((f) => f.path)).toEqual([]);
  });

  it("docs/design.md defines invariants 1 to 7, in order", () => {
    expect(designInvariants()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it("every docs/design.md invariant citation names an invariant it defines", () => {
    const defined = new Set(designInvariants());
    const cite = /docs\/design\.md(?: "[^"\n]*",?)? invariants? (\d+(?:(?:, | and | or |\/)\d+)*)/g;
    const cited: string[] = [];
    const wrong: string[] = [];
    for (const { path, text } of files) {
      for (const m of text.matchAll(cite)) {
        for (const n of (m[1] ?? "").split(/\D+/).map(Number)) {
          cited.push(`${path}: ${n}`);
          if (!defined.has(n)) wrong.push(`${path}: invariant ${n}`);
        }
      }
    }
    expect(cited.length).toBeGreaterThan(15);
    expect(wrong).toEqual([]);
  });

  it("every quoted section of docs/design.md that a file cites is a heading there", () => {
    const headings = [...read("docs/design.md").matchAll(/^#+ (.+)$/gm)].map((m) =>
      (m[1] ?? "").toLowerCase(),
    );
    const wrong: string[] = [];
    for (const { path, text } of files) {
      for (const m of text.matchAll(/docs\/design\.md "([^"\n]+)"/g)) {
        const title = (m[1] ?? "").toLowerCase();
        if (!headings.some((h) => h.includes(title))) wrong.push(`${path}: "${m[1]}"`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
