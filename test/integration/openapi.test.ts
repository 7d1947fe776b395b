/**
 * The OpenAPI description matches the routes the app really registers (docs/design.md "CPS HTTP API",
 * RFC 8816 §9 paths), in both directions, and GET /openapi.json serves exactly that document.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app.js";
import { openApiDocument } from "../../src/routes/openapi.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

/** `/cps/:tn/ppts/:id/` -> `/cps/{tn}/ppts/{id}`. */
function toOpenApiPath(path: string): string {
  const templated = path.replace(/:([A-Za-z0-9_]+)(\{[^}]*\})?/g, "{$1}");
  return templated.length > 1 ? templated.replace(/\/+$/, "") : templated;
}

/** "METHOD path" for every handler the app registers, minus middleware and 405 fallbacks. */
function registeredOperations(): Set<string> {
  const ops = new Set<string>();
  for (const r of app.routes) {
    if (r.method === "ALL") continue; // app.use middleware and the .all() 405 fallbacks
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

describe("OpenAPI document <-> registered routes (docs/design.md CPS HTTP API, RFC 8816 §9)", () => {
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
    const res = await exports.default.fetch(new Request(`${TEST_CPS_ORIGIN}/openapi.json`));
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json\b/);
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(openApiDocument)));
  });
});

/** Example values for the path parameters of the document (valid spellings, so routing is tested). */
const EXAMPLE_PARAMS: Record<string, string> = {
  tn: "12025550123",
  id: "a".repeat(32),
  block: "1202555xxxx",
  dest: "12025550123",
  orig: "12155551212",
  spc: "1234",
};
/** Methods a client can send (fetch forbids CONNECT, TRACE, TRACK). */
const TRIED_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] as const;

/** Every (documented path, method it does not describe) pair, with the Allow the answer must carry. */
function wrongMethodTable(): [string, string, string][] {
  const rows: [string, string, string][] = [];
  for (const [path, item] of Object.entries(openApiDocument.paths)) {
    const described = HTTP_METHODS.filter((m) => m in item).map((m) => m.toUpperCase());
    const allow = [...described].sort().join(", ");
    const url = path.replace(/\{([^}]+)\}/g, (_m, name: string) => EXAMPLE_PARAMS[name] ?? "x");
    for (const method of TRIED_METHODS) {
      // HEAD is served wherever GET is (Hono answers it with the GET handler, without a body).
      if (described.includes(method) || (method === "HEAD" && described.includes("GET"))) continue;
      rows.push([method, url, allow]);
    }
  }
  return rows;
}

describe("adversary #16: every documented path answers a wrong method with 405 and Allow", () => {
  it("the table covers every documented path, /health and /openapi.json included", () => {
    const urls = new Set(wrongMethodTable().map(([, url]) => url));
    expect(urls.size).toBe(Object.keys(openApiDocument.paths).length);
    expect(urls).toContain("/health");
    expect(urls).toContain("/openapi.json");
  });

  it.each(wrongMethodTable())("%s %s: 405 METHOD_NOT_ALLOWED, Allow: %s", async (method, url, allow) => {
    const res = await exports.default.fetch(
      new Request(`${TEST_CPS_ORIGIN}${url}`, {
        method,
        ...(["POST", "PUT", "PATCH"].includes(method)
          ? { body: "{}", headers: { "Content-Type": "application/json" } }
          : {}),
      }),
    );
    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")?.split(", ").sort().join(", ")).toBe(allow);
    // The ATIS paths answer in the ATIS JSON error format (src/http/atis-errors.ts), with the same code.
    expect(res.headers.get("Content-Type")).toBe(
      url.startsWith("/passports/") ? "application/json" : "application/problem+json",
    );
    if (method !== "HEAD") expect((await res.json<{ code: string }>()).code).toBe("METHOD_NOT_ALLOWED");
  });
});
