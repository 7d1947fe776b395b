/**
 * Moving a test PKI (src/stir/test-pki.ts, TEST ONLY keys made at test time) from the Node side,
 * where vitest.config.ts builds it, into workerd tests as the `TEST_PKI` binding; the same root goes
 * to the Worker as TRUST_ANCHORS_PEM. Nothing here is a key of anything real.
 *
 * The PKI's CRLs (RFC 5280 §5) travel too: `crlResponse` answers the Worker's outbound CRL fetches in
 * the integration projects (vitest.config.ts `outboundService`), so the CPS fetches real CRL bytes.
 */
import { X509Certificate } from "@peculiar/x509";
import { issueCredentialToken } from "../../src/stir/credential-token.js";
import {
  type CaOptions,
  issueTestDelegateCa,
  issueTestLeaf,
  type LeafOptions,
  type TestCertificate,
  type TestCredential,
  type TestCrlName,
  type TestPki,
} from "../../src/stir/test-pki.js";
import { TEST_CPS_ORIGIN } from "./origin.js";

const CREDENTIALS = [
  "valid",
  "expired",
  "notYetValid",
  "wrongAnchor",
  "nonCaIntermediate",
  "noTnAuthList",
  // Revocation branch (src/stir/test-pki.ts): certificates naming CRL distribution points.
  "crlValid",
  "crlRevokedLeaf",
  "underRevokedIntermediate",
] as const;
export type CredentialName = (typeof CREDENTIALS)[number];

interface SerialCa {
  der: string;
  pkcs8: string;
  spki: string;
}
interface SerialCredential {
  pkcs8: string;
  der: string[];
}
export interface SerialTestPki {
  rootPem: string;
  intermediate: SerialCa;
  /** The CA of the revocation branch, whose CRL `crls.crlIntermediate` is. */
  crlIntermediate: SerialCa;
  credentials: Record<CredentialName, SerialCredential>;
  /** Each CRL's URL and DER (base64). */
  crls: Record<TestCrlName, { url: string; der: string }>;
  createdAt: number;
}

const ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const b64 = (bytes: ArrayBuffer | Uint8Array) => {
  let bin = "";
  for (const b of new Uint8Array(bytes)) bin += String.fromCharCode(b);
  return btoa(bin);
};
const unb64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

export async function serializeTestPki(pki: TestPki): Promise<SerialTestPki> {
  const credentials = {} as Record<CredentialName, SerialCredential>;
  for (const name of CREDENTIALS) {
    const cred = pki[name];
    credentials[name] = {
      pkcs8: b64((await crypto.subtle.exportKey("pkcs8", cred.privateKey)) as ArrayBuffer),
      der: cred.der.map((d) => b64(d)),
    };
  }
  const ca = async (c: TestCertificate): Promise<SerialCa> => ({
    der: b64(c.certificate.rawData),
    pkcs8: b64((await crypto.subtle.exportKey("pkcs8", c.keys.privateKey)) as ArrayBuffer),
    spki: b64((await crypto.subtle.exportKey("spki", c.keys.publicKey)) as ArrayBuffer),
  });
  const crls = {} as Record<TestCrlName, { url: string; der: string }>;
  for (const [name, crl] of Object.entries(pki.crls) as [TestCrlName, TestPki["crls"][TestCrlName]][]) {
    crls[name] = { url: crl.url, der: b64(crl.der) };
  }
  return {
    rootPem: pki.root.certificate.toString("pem"),
    intermediate: await ca(pki.intermediate),
    crlIntermediate: await ca(pki.crlIntermediate),
    credentials,
    crls,
    createdAt: Date.now(),
  };
}

/**
 * The test PKI's CRL repository, for the integration Worker's outbound fetches (vitest.config.ts):
 * the DER of the CRL at `url` (`application/pkix-crl`), 404 for another path on the CRL host, or
 * undefined for any other URL. Only the
 * CRLs certificates name are served (`wrongSigner` and `stale` live at their own URLs, which a test
 * names by issuing a leaf that points there).
 */
export function crlResponse(serial: SerialTestPki, url: string): Response | undefined {
  for (const crl of Object.values(serial.crls)) {
    if (crl.url === url) {
      return new Response(unb64(crl.der), {
        status: 200,
        headers: { "content-type": "application/pkix-crl", "cache-control": "max-age=300" },
      });
    }
  }
  // Any other path on the CRL host is missing (a distribution point whose CRL cannot be had).
  const origins = new Set(Object.values(serial.crls).map((c) => new URL(c.url).origin));
  if (origins.has(new URL(url).origin)) return new Response("no such CRL", { status: 404 });
  return undefined;
}

/** A credential usable inside workerd: its signing key and its chain (leaf first, DER). */
export interface WorkerCredential {
  privateKey: CryptoKey;
  der: Uint8Array[];
}

export interface WorkerTestPki {
  rootPem: string;
  /** CRL URLs by name (`TestPki.crls`): what the revocation branch's certificates name. */
  crlUrls: Record<TestCrlName, string>;
  credential(name: CredentialName): Promise<WorkerCredential>;
  /** The revocation branch's CA, to issue leaves naming a CRL URL (`issue({ issuer, crlUrl })`). */
  crlIntermediate(): Promise<TestCertificate>;
  /** A fresh leaf under the trusted intermediate, or under `options.issuer` (custom TNAuthList or dates). */
  issue(options: LeafOptions): Promise<WorkerCredential>;
  /** A fresh delegate CA (RFC 9060 §4) under the trusted intermediate, or under `options.issuer`. */
  delegate(options: CaOptions): Promise<TestCertificate>;
}

export function loadTestPki(json: string): WorkerTestPki {
  const serial = JSON.parse(json) as SerialTestPki;
  const importSigning = (pkcs8: string) =>
    crypto.subtle.importKey("pkcs8", unb64(pkcs8), ALG, true, ["sign"]);
  let intermediate: Promise<TestCertificate> | undefined;
  let crlIntermediate: Promise<TestCertificate> | undefined;
  const loadCa = async (ca: SerialCa): Promise<TestCertificate> => ({
    certificate: new X509Certificate(unb64(ca.der)),
    keys: {
      privateKey: await importSigning(ca.pkcs8),
      publicKey: await crypto.subtle.importKey("spki", unb64(ca.spki), ALG, true, ["verify"]),
    },
  });
  const loadIntermediate = () => loadCa(serial.intermediate);
  const crlUrls = {} as Record<TestCrlName, string>;
  for (const [name, crl] of Object.entries(serial.crls) as [TestCrlName, { url: string }][]) {
    crlUrls[name] = crl.url;
  }
  const toWorker = (c: TestCredential): WorkerCredential => ({ privateKey: c.privateKey, der: [...c.der] });
  return {
    rootPem: serial.rootPem,
    crlUrls,
    crlIntermediate() {
      crlIntermediate ??= loadCa(serial.crlIntermediate);
      return crlIntermediate;
    },
    async credential(name) {
      const c = serial.credentials[name];
      return { privateKey: await importSigning(c.pkcs8), der: c.der.map(unb64) };
    },
    async issue(options) {
      intermediate ??= loadIntermediate();
      return toWorker(await issueTestLeaf(await intermediate, options, new Date()));
    },
    async delegate(options) {
      intermediate ??= loadIntermediate();
      return issueTestDelegateCa(await intermediate, options, new Date());
    },
  };
}

/** `Authorization` header value for a credential token naming the certificate by x5c. */
export async function bearerFor(
  credential: { readonly privateKey: CryptoKey; readonly der: readonly Uint8Array[] },
  action: string,
  options: { audience?: string; now?: number; jti?: string } = {},
): Promise<string> {
  const token = await issueCredentialToken({
    privateKey: credential.privateKey,
    x5c: credential.der,
    audience: options.audience ?? TEST_CPS_ORIGIN,
    action,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.jti === undefined ? {} : { jti: options.jti }),
  });
  return `Bearer ${token}`;
}
