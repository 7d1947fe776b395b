/**
 * Benchmark baseline (mounted only with BENCH_BASELINE="true"): the same Worker -> Durable Object hop
 * and one SQLite write or read, with no CPS logic, so bench/ can report CPS/baseline ratios.
 */
import { Hono } from "hono";
import type { BaselineStore } from "../durable-objects/baseline-store.js";
import type { AppEnv } from "../http/types.js";
import { newBlobId } from "../stir/blob-id.js";

function store(env: Env, key: string): DurableObjectStub<BaselineStore> {
  const ns = env.BASELINE_STORE as DurableObjectNamespace<BaselineStore>;
  return ns.get(ns.idFromName(key));
}

export const benchBaselineRoutes = new Hono<AppEnv>();

benchBaselineRoutes.post("/:key", async (c) => {
  const id = newBlobId();
  await store(c.env, c.req.param("key")).write(id, new Uint8Array(await c.req.arrayBuffer()));
  return c.json({ id }, 201);
});

benchBaselineRoutes.get("/:key/:id", async (c) => {
  const value = await store(c.env, c.req.param("key")).read(c.req.param("id"));
  if (!value) return c.body(null, 404);
  return c.body(value.slice().buffer);
});
