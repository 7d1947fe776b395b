/**
 * Who may speak for numbers (docs/design.md invariant 5): TNAuthList coverage of number blocks, and
 * the holder id a directory record is written under. Pure code.
 *
 * The **holder** of a record is the credential certificate's subject and issuer names, hashed: a
 * renewed certificate (new key, new serial, same subject from the same CA) keeps control of what the
 * old one registered, which a chain fingerprint would not. Two holders are the same only when the
 * issuing CA gave them the same subject name, which is the CA's promise not to do.
 */
import { CpsError } from "../errors.js";
import type { VerifiedCredentialToken } from "./credential-token.js";
import { type NumberBlock, type SpcNumberBlocks, tnAuthListCoversBlock } from "./number-blocks.js";

/** The first 16 bytes (128 bits) of SHA-256 over `text` as UTF-8, as 32 lowercase hex characters. */
export async function hash128Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** 32 hex characters (128 bits) of SHA-256 over issuer and subject names. */
export async function holderId(credential: VerifiedCredentialToken): Promise<string> {
  const leaf = credential.certificate.leaf;
  return hash128Hex(`${leaf.issuer}\n${leaf.subject}`);
}

/** Throws `CERT_NOT_AUTHORISED` (403) unless the certificate speaks for every number of every block. */
export function requireCoverage(
  credential: VerifiedCredentialToken,
  blocks: readonly NumberBlock[],
  spcs: SpcNumberBlocks,
): void {
  for (const block of blocks) {
    if (!tnAuthListCoversBlock(credential.tnAuthList, block, spcs)) {
      throw new CpsError("CERT_NOT_AUTHORISED", "The certificate's TNAuthList does not cover these numbers");
    }
  }
}
