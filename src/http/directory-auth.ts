/**
 * Route-side checks shared by the key and discovery routes: served numbers, authority, JSON bodies,
 * and the signed key records of key registrations (RFC 8816 §11, docs/key-directory.md).
 */
import type { Context } from "hono";
import type { CpsConfig } from "../config.js";
import { CpsError } from "../errors.js";
import { logEvent } from "../log.js";
import { holderId, requireCoverage } from "../stir/authority.js";
import { type NumberBlock, patternCoversBlock } from "../stir/number-blocks.js";
import { type VerifiedKeyRecord, verifyKeyRecord } from "../stir/signed-key-record.js";
import { X5uFetcher } from "../stir/x5u.js";
import { validatorFor } from "./credential-auth.js";
import type { AppEnv } from "./types.js";

// Per isolate, rebuilt when its settings change: the x5u fetcher (and its cache) for records that
// name their chain by URL, under the same rules as credential tokens' x5u (threat model #10).
let recordX5u: { allowLoopback: boolean; hosts: readonly string[]; fetcher: X5uFetcher } | undefined;

function x5uFetcher(config: CpsConfig): X5uFetcher {
  if (
    recordX5u === undefined ||
    recordX5u.allowLoopback !== config.allowLoopbackX5u ||
    recordX5u.hosts.join(",") !== config.x5uAllowedHosts.join(",")
  ) {
    recordX5u = {
      allowLoopback: config.allowLoopbackX5u,
      hosts: config.x5uAllowedHosts,
      fetcher: new X5uFetcher({
        allowLoopbackHttp: config.allowLoopbackX5u,
        allowedHosts: config.x5uAllowedHosts,
        onFailure: (reason, status) =>
          logEvent({ event: "x5u_fetch_failed", reason, ...(status === undefined ? {} : { status }) }),
      }),
    };
  }
  return recordX5u.fetcher;
}

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

  /**
   * Verifies the signed key record of a registration against the CPS's trust anchors (the validator
   * of credential tokens, with its cache and revocation checks) at the current time: KEY_RECORD_*,
   * CERT_* (CERT_NOT_AUTHORISED unless its certificate covers every block it names).
   */
  async verifyRecord(c: Context<AppEnv>, record: unknown): Promise<VerifiedKeyRecord> {
    const config = c.get("config");
    const fetcher = x5uFetcher(config);
    return verifyKeyRecord(record, {
      validator: await validatorFor(config),
      resolveX5u: (url) => fetcher.fetchChain(url),
      spcNumberBlocks: config.spcNumberBlocks,
    });
  },

  /**
   * KEY_RECORD_SIGNER (403) unless the record was signed by the same holder as the request's
   * credential token (src/stir/authority.ts): nobody registers a record for someone else.
   */
  async requireSigner(c: Context<AppEnv>, verified: VerifiedKeyRecord): Promise<void> {
    if (verified.holder !== (await holderId(c.get("credential")))) {
      throw new CpsError("KEY_RECORD_SIGNER", "The key record is signed by another holder than the token");
    }
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
