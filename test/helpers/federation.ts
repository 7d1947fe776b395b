/**
 * The ATIS_CPS_CREDENTIAL secret of a CPS (src/federation/republish.ts) from a test PKI credential
 * (TEST ONLY keys made at test time): `{"privateKeyPkcs8": base64url DER, "x5c": [base64 DER, ...]}`,
 * the format docs/atis-api.md gives operators. WebCrypto only, so workerd and Node tests share it.
 */
import { encodeBase64url } from "../../src/stir/base64url.js";
import type { TestCredential } from "../../src/stir/test-pki.js";

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export async function cpsCredentialSecret(cred: TestCredential): Promise<string> {
  const pkcs8 = new Uint8Array((await crypto.subtle.exportKey("pkcs8", cred.privateKey)) as ArrayBuffer);
  return JSON.stringify({ privateKeyPkcs8: encodeBase64url(pkcs8), x5c: cred.der.map(base64) });
}
