/**
 * The OpenAPI description matches the routes the app really registers (DESIGN.md "CPS HTTP API",
 * RFC 8816 §9 paths), in both directions, and GET /openapi.json serves exactly that document.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { openApiDocument } from "../../src/routes/openapi.js";

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

/** `/cps/:tn/ppts/:id/` -> `/cps/{tn}/ppts/{id}`. */
function toOpenApiPath(path: string): string {
  const templated = path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}");
  return templated.length > 1 ? templated.replace(/\/+$/, "") : templated;
}

/** "METHOD path" for every handler the app registers, minus middleware, 405 fallbacks and /_bench/. */
function registeredOperations(): Set<string> {
  const ops = new Set<string>();
  for (const r of app.routes) {
    if (r.method === "ALL") continue; // app.use middleware and the .all() 405 fallbacks
    if (r.path.startsWith("/_bench/")) continue; // benchmark baseline, off in production
    ops.add(`${r.method.toLowerCase()} ${toOpenApiPath(r.path)}`);
  }
  return ops;
}

function describedOperations(): Set<string> {
  const ops = new Set<string>();
  for (const [path, item] of Object.entries(openApiDocument.paths)) {
    for (const method of HTTP_METHODS) {
      if (method in item) ops.add(`${method} ${path}`);
    }
  }
  return ops;
}

describe("OpenAPI document <-> registered routes (DESIGN.md CPS HTTP API, RFC 8816 §9)", () => {
  it("the path conversion handles params and trailing slashes", () => {
    expect(toOpenApiPath("/cps/:tn/ppts/:id/")).toBe("/cps/{tn}/ppts/{id}");
    expect(toOpenApiPath("/cps/:tn/ppts")).toBe("/cps/{tn}/ppts");
    expect(toOpenApiPath("/health/")).toBe("/health");
    expect(toOpenApiPath("/")).toBe("/");
  });

  it("finds the RFC 8816 §9 routes among the registered ones (the walk over app.routes works)", () => {
    const ops = registeredOperations();
    for (const op of ["post /cps/{tn}/ppts", "get /cps/{tn}/ppts", "get /cps/{tn}/ppts/{id}"]) {
      expect(ops).toContain(op);
    }
  });

  it("describes every registered route with its method", () => {
    const described = describedOperations();
    const missing = [...registeredOperations()].filter((op) => !described.has(op));
    expect(missing).toEqual([]);
  });

  it("describes no route the app does not register", () => {
    const registered = registeredOperations();
    const extra = [...describedOperations()].filter((op) => !registered.has(op));
    expect(extra).toEqual([]);
  });

  it("declares every {param} of a path as a path parameter", () => {
    for (const [path, item] of Object.entries(openApiDocument.paths)) {
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      const params = ("parameters" in item ? item.parameters : []) as readonly { name: string; in: string }[];
      const declared = params
        .filter((p) => p.in === "path")
        .map((p) => p.name)
        .sort();
      expect(declared, path).toEqual(inPath);
    }
  });
});

describe("GET /openapi.json", () => {
  it("serves the same document as JSON", async () => {
    const res = await exports.default.fetch(new Request("https://cps.example.com/openapi.json"));
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json\b/);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(openApiDocument)));
  });
});
