/** Route-side checks shared by the key and discovery routes: served numbers, authority, JSON bodies. */
import type { Context } from "hono";
import type { CpsConfig } from "../config.js";
import { CpsError } from "../errors.js";
import { holderId, requireCoverage } from "../stir/authority.js";
import { type NumberBlock, patternCoversBlock } from "../stir/number-blocks.js";
import type { AppEnv } from "./types.js";

export const authz = {
  /** NOT_SERVED (421) unless this CPS serves every number of every block (SERVED_PREFIXES). */
  requireServed(config: CpsConfig, blocks: readonly NumberBlock[]): void {
    const served = config.servedPrefixes;
    if (served === null) return;
    if (!blocks.every((b) => served.some((p) => patternCoversBlock(p, b)))) {
      throw new CpsError("NOT_SERVED", "This CPS does not serve these numbers; see /.well-known/stir-oob");
    }
  },

  /** CERT_NOT_AUTHORISED (403) unless the verified credential covers the blocks; returns the holder. */
  async requireAuthority(c: Context<AppEnv>, blocks: readonly NumberBlock[]): Promise<{ holder: string }> {
    const credential = c.get("credential");
    requireCoverage(credential, blocks, c.get("config").spcNumberBlocks);
    return { holder: await holderId(credential) };
  },

  /** The request body as JSON, or INVALID_BODY. */
  async jsonBody(c: Context<AppEnv>): Promise<unknown> {
    try {
      return await c.req.json();
    } catch {
      throw new CpsError("INVALID_BODY", "The body is not JSON");
    }
  },
};
