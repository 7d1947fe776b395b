/**
 * Moving a test PKI (src/stir/test-pki.ts, TEST ONLY keys made at test time) from the Node side,
 * where vitest.config.ts builds it, into workerd tests as the `TEST_PKI` binding; the same root goes
 * to the Worker as TRUST_ANCHORS_PEM. Nothing here is a key of anything real.
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
  credentials: Record<CredentialName, SerialCredential>;
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
  return {
    rootPem: pki.root.certificate.toString("pem"),
    intermediate: {
      der: b64(pki.intermediate.certificate.rawData),
      pkcs8: b64((await crypto.subtle.exportKey("pkcs8", pki.intermediate.keys.privateKey)) as ArrayBuffer),
      spki: b64((await crypto.subtle.exportKey("spki", pki.intermediate.keys.publicKey)) as ArrayBuffer),
    },
    credentials,
    createdAt: Date.now(),
  };
}

/** A credential usable inside workerd: its signing key and its chain (leaf first, DER). */
export interface WorkerCredential {
  privateKey: CryptoKey;
  der: Uint8Array[];
}

export interface WorkerTestPki {
  rootPem: string;
  credential(name: CredentialName): Promise<WorkerCredential>;
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
  const loadIntermediate = async (): Promise<TestCertificate> => ({
    certificate: new X509Certificate(unb64(serial.intermediate.der)),
    keys: {
      privateKey: await importSigning(serial.intermediate.pkcs8),
      publicKey: await crypto.subtle.importKey("spki", unb64(serial.intermediate.spki), ALG, true, [
        "verify",
      ]),
    },
  });
  const toWorker = (c: TestCredential): WorkerCredential => ({ privateKey: c.privateKey, der: [...c.der] });
  return {
    rootPem: serial.rootPem,
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
  credential: WorkerCredential,
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
