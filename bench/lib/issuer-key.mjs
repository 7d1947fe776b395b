/** Storage-token issuer keys for the benchmark scripts, which mint tokens themselves. */

/**
 * The signing key of an issuer key entry (src/dev/issuer-key.mjs: `privateKeyPkcs8`, base64), as the
 * RSA-PSS SHA-384 key `mintToken` (src/stir/storage-token.ts) signs with: the signature blind issuance
 * (RFC 9474) yields, made directly.
 */
export function issuerSigningKey(entry) {
  return crypto.subtle.importKey(
    "pkcs8",
    Buffer.from(entry.privateKeyPkcs8, "base64"),
    { name: "RSA-PSS", hash: "SHA-384" },
    false,
    ["sign"],
  );
}
