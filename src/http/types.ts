/** Hono generics shared by the app and every route file. */
import type { CpsConfig } from "../config.js";

export interface AppEnv {
  Bindings: Env;
  Variables: { config: CpsConfig };
}
