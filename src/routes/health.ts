/** Liveness: answers without touching storage, so a health check costs nothing and reveals nothing. */
import { Hono } from "hono";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";

export const healthRoutes = new Hono<AppEnv>();

healthRoutes.get("/", (c) => c.json({ status: "ok" }));
healthRoutes.all("/", methodNotAllowed("GET"));
