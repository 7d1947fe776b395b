/**
 * The bench Worker (bench/wrangler.toml), which `npm run bench` starts beside the CPS: the same
 * Worker -> Durable Object hop and one SQLite write or read as a CPS store or list, with no CPS logic,
 * so bench/ can report CPS/baseline ratios. Its own Worker so that no bench code ships with the CPS.
 *
 *   POST /_bench/baseline/{key}        body stored under a fresh id -> 201 {"id"}
 *   GET  /_bench/baseline/{key}/{id}   the stored body, or 404
 *   GET  /_bench/baseline/{key}        every body stored under key, as text: {"passports": [{"id", "blob"}]}
 *                                      (`npm run bench:peer` system `bare`: a list's shape, no CPS logic)
 */
import { Hono } from "hono";
import { noStoreByDefault } from "../../src/http/middleware.js";
import { newBlobId } from "../../src/stir/blob-id.js";
import type { BaselineStore } from "./baseline-store.js";

export { BaselineStore } from "./baseline-store.js";

export interface BenchEnv {
  BASELINE_STORE: DurableObjectNamespace<BaselineStore>;
}

function store(env: BenchEnv, key: string): DurableObjectStub<BaselineStore> {
  return env.BASELINE_STORE.get(env.BASELINE_STORE.idFromName(key));
}

const app = new Hono<{ Bindings: BenchEnv }>();
// The CPS's cheapest middleware stays in the path, so the hop compares like with like.
app.use("*", noStoreByDefault());

app.post("/_bench/baseline/:key", async (c) => {
  const id = newBlobId();
  await store(c.env, c.req.param("key")).write(id, new Uint8Array(await c.req.arrayBuffer()));
  return c.json({ id }, 201);
});

const text = new TextDecoder();

app.get("/_bench/baseline/:key", async (c) => {
  const rows = await store(c.env, c.req.param("key")).list();
  return c.json({ passports: rows.map((r) => ({ id: r.id, blob: text.decode(r.value) })) });
});

app.get("/_bench/baseline/:key/:id", async (c) => {
  const value = await store(c.env, c.req.param("key")).read(c.req.param("id"));
  if (!value) return c.body(null, 404);
  return c.body(value.slice().buffer);
});

app.get("/health", (c) => c.json({ status: "ok" }));

export default app;
