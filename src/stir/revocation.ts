/**
 * Revocation checking of a validated certificate path (RFC 5280 §6.3; RFC 8226 §10 leaves the method
 * to the deployment). `CertificateValidator` calls the checker after path validation and again on
 * every cache hit, so a cached chain never outlives its revocation. The CRL checker is
 * src/stir/crl.ts; tests may pass any object of this shape.
 */
import type { X509Certificate } from "@peculiar/x509";

export interface RevocationChecker {
  /**
   * Resolves when no certificate of `path` is known revoked at `now`. `path` is the validated path,
   * leaf first, trust anchor last (the anchor itself is not checked: it is trusted by configuration).
   * Throws `CpsError` `CERT_REVOKED` (a certificate is listed) or `CERT_REVOCATION_UNKNOWN` (a
   * certificate names revocation information that cannot be had or checked: fail closed).
   */
  check(path: readonly X509Certificate[], now: Date): Promise<void>;
}
