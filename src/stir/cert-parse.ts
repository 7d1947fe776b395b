/**
 * Parsing STIR certificates (RFC 8226) and chains: PEM or DER in, @peculiar/x509 objects out, with a
 * SHA-256 fingerprint of the whole chain computed once (the key of the validated-chain cache).
 *
 * Library errors (asn1js, RangeError on truncated input) are caught here and become `CERT_MALFORMED`.
 */
import "reflect-metadata";
import { PemConverter, X509Certificate } from "@peculiar/x509";
import { CpsError } from "../errors.js";
import { decodeTnAuthList, TN_AUTH_LIST_OID, type TnAuthList } from "./tnauthlist.js";

/** At most this many certificates in a chain (leaf, a few intermediates). */
export const MAX_CHAIN_LENGTH = 8;

/** A parsed chain, leaf first, with its fingerprint (hex SHA-256 over the length-prefixed DERs). */
export interface CertificateChain {
  readonly certificates: readonly X509Certificate[];
  readonly fingerprint: string;
}

function malformed(cause?: unknown): CpsError {
  return new CpsError("CERT_MALFORMED", "The certificate cannot be parsed", { cause });
}

/** Parses one certificate from PEM text or DER bytes; throws `CERT_MALFORMED`. */
export function parseCertificate(input: string | Uint8Array | ArrayBuffer): X509Certificate {
  try {
    if (typeof input === "string") {
      const ders = PemConverter.decode(input);
      if (ders.length !== 1 || ders[0] === undefined) throw malformed();
      return new X509Certificate(ders[0]);
    }
    return new X509Certificate(input);
  } catch (cause) {
    if (cause instanceof CpsError) throw cause;
    throw malformed(cause);
  }
}

/**
 * Parses a chain, leaf first (the order of an x5u PEM file, ATIS-1000080, and of `x5c`, RFC 7515
 * §4.1.6): PEM text with one or more CERTIFICATE blocks, or a list of DER certificates.
 */
export async function parseCertificateChain(
  input: string | readonly (Uint8Array | ArrayBuffer)[],
): Promise<CertificateChain> {
  let ders: (Uint8Array | ArrayBuffer)[];
  if (typeof input === "string") {
    try {
      ders = PemConverter.decodeWithHeaders(input)
        .filter((block) => block.type === "CERTIFICATE")
        .map((block) => block.rawData);
    } catch (cause) {
      throw malformed(cause);
    }
  } else {
    if (!Array.isArray(input)) throw malformed();
    ders = [...input];
  }
  if (ders.length === 0 || ders.length > MAX_CHAIN_LENGTH) {
    throw new CpsError("CERT_MALFORMED", "A certificate chain has 1 to 8 certificates");
  }
  const certificates = ders.map((der) => parseCertificate(der));
  return { certificates, fingerprint: await chainFingerprint(certificates) };
}

/** Hex SHA-256 over each certificate's DER, each prefixed with its 4-byte length. */
export async function chainFingerprint(certificates: readonly X509Certificate[]): Promise<string> {
  const total = certificates.reduce((n, c) => n + 4 + c.rawData.byteLength, 0);
  const buf = new Uint8Array(total);
  const view = new DataView(buf.buffer);
  let off = 0;
  for (const cert of certificates) {
    view.setUint32(off, cert.rawData.byteLength);
    buf.set(new Uint8Array(cert.rawData), off + 4);
    off += 4 + cert.rawData.byteLength;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The certificate's TNAuthList (RFC 8226 §9), or `undefined` when it has none. */
export function certificateTnAuthList(cert: X509Certificate): TnAuthList | undefined {
  const ext = cert.getExtension(TN_AUTH_LIST_OID);
  return ext === null ? undefined : decodeTnAuthList(ext.value);
}

/** Imports the certificate's public key for ES256 verification; anything but P-256 is refused. */
export async function certificatePublicKey(cert: X509Certificate): Promise<CryptoKey> {
  try {
    return await crypto.subtle.importKey(
      "spki",
      cert.publicKey.rawData,
      { name: "ECDSA", namedCurve: "P-256" },
      true,
      ["verify"],
    );
  } catch (cause) {
    throw new CpsError("CERT_MALFORMED", "The certificate key is not an ECDSA P-256 key", { cause });
  }
}
