/**
 * src/dev/build-web.mjs runs before every `wrangler dev` (wrangler.toml `[build]`), and each e2e test
 * starts its own: a build with nothing new to build must leave dist/web/ untouched, or every running
 * server would reload its assets whenever another one starts.
 */
import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildWeb, PAGES, WEB_OUT } from "../../src/dev/build-web.mjs";

async function mtimes(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(path, (await stat(path)).mtimeMs);
  }
  return out;
}

describe("build-web", () => {
  it("builds every page, then a second build with the same inputs writes nothing", async () => {
    const urls = await buildWeb();
    expect(urls).toEqual(PAGES.map((p) => p.url));
    for (const p of PAGES) expect(existsSync(join(WEB_OUT, p.file))).toBe(true);
    const before = await mtimes(WEB_OUT);
    expect(before.size).toBeGreaterThan(PAGES.length);
    await new Promise((r) => setTimeout(r, 20));
    expect(await buildWeb()).toEqual(urls);
    expect(await mtimes(WEB_OUT)).toEqual(before);
  }, 60_000);
});
