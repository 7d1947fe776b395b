/**
 * The layer rules of docs/design.md "Layers": every relative import in src/ points down the list (or
 * stays in its own folder), the client library reaches only protocol code, and no Worker code imports
 * the CLI, the local-server code or the benchmarks. Read from the source text, so a new upward import
 * fails here before it can grow into a cycle.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "../../src");

/** Rank of each part of the Worker: an import must go to a lower rank or stay in its own part. */
const WORKER_RANK: Record<string, number> = {
  errors: 0,
  log: 0,
  stir: 1,
  // Oblivious HTTP protocol code (issue 19): beside stir, and may import it (OHTTP_MAY below).
  ohttp: 1,
  config: 2,
  storage: 3,
  dummies: 4,
  directory: 4,
  push: 4,
  tokens: 4,
  // The operator's figures (issue 18): pure counting and rendering, plus the hub address for reports.
  metrics: 4,
  "durable-objects": 5,
  // ATIS federation (issue 16): re-publishing to peer CPSes and the bridge into the RFC 8816 queues.
  federation: 5,
  http: 6,
  routes: 7,
  app: 8,
  index: 9,
};
/** What the client library and the CLI may import besides their own folder. */
const CLIENT_MAY = new Set(["stir", "ohttp", "errors"]);
const CLI_MAY = new Set(["client", "stir", "ohttp", "errors"]);
/** The pure OHTTP code and the relay Worker (its own Worker: nothing of the CPS beyond these). */
const OHTTP_MAY = new Set(["stir", "errors"]);
const RELAY_MAY = new Set(["errors", "log", "ohttp", "stir"]);

/** The part of src/ a file belongs to: its first folder, or its name for a top-level file. */
function partOf(file: string): string {
  const rel = relative(SRC, file).split(/[\\/]/);
  return rel.length > 1 ? rel[0]! : rel[0]!.replace(/\.(d\.)?m?[tj]s$/, "");
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|mjs)$/.test(e.name) && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

interface Edge {
  from: string;
  to: string;
  file: string;
}

/** Every relative import (static or dynamic, type-only included) between two parts of src/. */
function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      const target = resolve(dirname(file), m[1]!);
      if (!target.startsWith(SRC)) continue;
      const from = partOf(file);
      const to = partOf(target);
      if (from !== to) out.push({ from, to, file: relative(SRC, file) });
    }
  }
  return out;
}

/** The imports that break the rules (empty when the tree keeps them). */
function violations(all: Edge[]): string[] {
  return all
    .filter(({ from, to }) => {
      if (from === "client") return !CLIENT_MAY.has(to);
      if (from === "cli") return !CLI_MAY.has(to);
      if (from === "ohttp") return !OHTTP_MAY.has(to);
      if (from === "relay") return !RELAY_MAY.has(to);
      if (from === "dev") return false; // local-server code: never imported by the Worker (below)
      const a = WORKER_RANK[from];
      const b = WORKER_RANK[to];
      return a === undefined || b === undefined || b >= a;
    })
    .map(({ from, to, file }) => `${file}: ${from} -> ${to}`);
}

describe("docs/design.md layers: imports point only down", () => {
  const all = edges();

  it("finds the imports it judges (the scan is not empty)", () => {
    expect(all.length).toBeGreaterThan(100);
    expect(all).toContainEqual(expect.objectContaining({ from: "routes", to: "http" }));
  });

  it("no part of src/ imports a part above it or beside it", () => {
    expect(violations(all)).toEqual([]);
  });

  it("the rule catches an upward import, a client reaching the server and the Worker reaching dev", () => {
    expect(violations([{ from: "stir", to: "http", file: "stir/x.ts" }])).toHaveLength(1);
    expect(violations([{ from: "tokens", to: "durable-objects", file: "tokens/x.ts" }])).toHaveLength(1);
    expect(violations([{ from: "client", to: "config", file: "client/x.ts" }])).toHaveLength(1);
    expect(violations([{ from: "routes", to: "dev", file: "routes/x.ts" }])).toHaveLength(1);
    expect(violations([{ from: "dummies", to: "push", file: "dummies/x.ts" }])).toHaveLength(1);
    expect(violations([{ from: "ohttp", to: "config", file: "ohttp/x.ts" }])).toHaveLength(1);
    expect(violations([{ from: "relay", to: "routes", file: "relay/x.ts" }])).toHaveLength(1);
    expect(violations([{ from: "routes", to: "relay", file: "routes/x.ts" }])).toHaveLength(1);
    expect(violations([{ from: "stir", to: "ohttp", file: "stir/x.ts" }])).toHaveLength(1);
    expect(violations([{ from: "ohttp", to: "stir", file: "ohttp/x.ts" }])).toHaveLength(0);
    expect(violations([{ from: "http", to: "ohttp", file: "http/x.ts" }])).toHaveLength(0);
  });
});
