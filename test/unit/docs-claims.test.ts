/**
 * The docs' claims against the tree (issue 13 finding 17): docs/conformance.md and
 * docs/threat-model.md name the tests that show each claim, so every named test file must exist, and
 * every adversary finding the threat model lists must have its `describe("adversary #N: …")` block in
 * the files it names. Sentences that claimed more than the code does must not come back.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
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
    expect(rows.map((r) => Number(r[1]))).toEqual(Array.from({ length: 17 }, (_, i) => i + 1));
    const missing: string[] = [];
    for (const [, n, cell] of rows) {
      for (const path of citedTests(cell ?? "")) {
        if (!read(path).includes(`"adversary #${n}:`)) missing.push(`#${n} in ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
