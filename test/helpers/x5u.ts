/**
 * The client tests' certificate "repository": x5u URLs (RFC 8225 §4.3) under
 * https://certs.example.test/ mapped in memory to the PEM chains of test credentials
 * (src/stir/test-pki.ts, TEST ONLY keys), and a VS `resolveCertificate` over that map. Nothing is
 * served: a real VS fetches the URL over https (test/e2e/atis-e2e-helpers.ts serves one on loopback).
 */
import type { SigningCredential } from "../../src/client/as.js";
import { CpsError } from "../../src/errors.js";
import { type CertificateChain, parseCertificateChain } from "../../src/stir/cert-parse.js";
import type { TestCredential } from "../../src/stir/test-pki.js";

/** The x5u URL of the chain published under `name`. */
export const x5uUrl = (name: string) => `https://certs.example.test/${name}.pem`;

export interface X5uMap {
  /** Publishes `cred`'s chain at `x5uUrl(name)` and returns the AS credential that names it. */
  signing(name: string, cred: TestCredential): SigningCredential;
  /** The chain published at `url`; X5U_FETCH_FAILED for any URL nothing was published at. */
  resolveCertificate(url: string): Promise<CertificateChain>;
}

export function x5uMap(): X5uMap {
  const pems = new Map<string, string>();
  return {
    signing(name, cred) {
      const x5u = x5uUrl(name);
      pems.set(x5u, cred.pem);
      return { privateKey: cred.privateKey, x5u, chain: cred.pem };
    },
    resolveCertificate: async (url) => {
      const pem = pems.get(url);
      if (pem === undefined) throw new CpsError("X5U_FETCH_FAILED", "unknown x5u");
      return parseCertificateChain(pem);
    },
  };
}
