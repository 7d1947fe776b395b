/**
 * TEST AND DEMO ONLY: a throwaway STIR PKI built in memory at run time.
 *
 * root CA -> intermediate CA -> service-provider certificate with a TNAuthList (RFC 8226 §9), plus the
 * broken variants the negative tests need (expired, not yet valid, chained to another root, issued by a
 * non-CA intermediate, no TNAuthList), and delegate CAs with a TNAuthList of their own (RFC 9060 §4)
 * for the scope-containment tests; and a revocation branch (RFC 5280 §5): CAs and leaves naming CRL
 * distribution points, a revoked leaf, a leaf under a revoked intermediate, and each issuer's CRL
 * (plus a CRL signed by the wrong key and a stale one) for the CRL checker's tests. Every key is generated fresh with WebCrypto on each call and never
 * leaves memory unless a caller writes it out; every subject carries "TEST ONLY". Nothing here is, or
 * chains to, a real STI-PA / STI-CA trust anchor. It lives in src/ because tests, the demo and the CLI
 * share it; production code paths never import it.
 */
import "reflect-metadata";
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  CRLDistributionPointsExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  PemConverter,
  SubjectKeyIdentifierExtension,
  type X509Certificate,
  X509CertificateGenerator,
  type X509Crl,
  X509CrlGenerator,
} from "@peculiar/x509";
import { encodeTnAuthList, TN_AUTH_LIST_OID, type TnAuthList } from "./tnauthlist.js";

/** Marker in every subject name of this PKI. */
export const TEST_PKI_LABEL = "TEST ONLY - stir-oob test PKI";

const ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY = 86_400_000;

/** Where the test PKI's CRLs live by default (a name that passes the x5u URL policy; nothing real). */
export const TEST_CRL_BASE_URL = "https://crl.stir-oob-test.example";

/** A certificate with its key pair (private key extractable, so the CLI can write demo files). */
export interface TestCertificate {
  readonly certificate: X509Certificate;
  readonly keys: CryptoKeyPair;
  /**
   * What a chain issued by this CA carries after its leaf: this certificate, then its issuers up to
   * (not including) the root. Absent means `[certificate]` (the intermediate under the root).
   */
  readonly path?: readonly X509Certificate[];
}

/** A signing credential: leaf key plus chain, leaf first, as PEM and DER. */
export interface TestCredential {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly chain: readonly X509Certificate[];
  /** PEM of the chain, leaf first: what an x5u URL serves. */
  readonly pem: string;
  /** DER of the chain, leaf first: what `x5c` carries (base64, RFC 7515 §4.1.6). */
  readonly der: readonly Uint8Array[];
}

export interface TestPki {
  readonly root: TestCertificate;
  readonly intermediate: TestCertificate;
  /** Valid service-provider credential with the TNAuthList given (or the default one). */
  readonly valid: TestCredential;
  readonly expired: TestCredential;
  readonly notYetValid: TestCredential;
  /** Chains to `otherRoot`, which is not an anchor of this PKI. */
  readonly wrongAnchor: TestCredential;
  readonly otherRoot: TestCertificate;
  /** Leaf issued by an intermediate whose basicConstraints say cA=false. */
  readonly nonCaIntermediate: TestCredential;
  readonly noTnAuthList: TestCredential;
  /**
   * Revocation branch (RFC 5280 §4.2.1.13, §5), beside the intermediate above (which names no CRL):
   * root -> `crlIntermediate` (CRL DP: the root's CRL) -> leaves naming `crlIntermediate`'s CRL;
   * root -> `revokedIntermediate` (listed on the root's CRL) -> `underRevokedIntermediate`.
   */
  readonly crlIntermediate: TestCertificate;
  readonly revokedIntermediate: TestCertificate;
  /** Under `crlIntermediate`, listed on nothing: passes a CRL check of both levels. */
  readonly crlValid: TestCredential;
  /** Under `crlIntermediate`, listed on its CRL. */
  readonly crlRevokedLeaf: TestCredential;
  /** Under `revokedIntermediate` (which the root's CRL lists); the leaf itself is listed nowhere. */
  readonly underRevokedIntermediate: TestCredential;
  /**
   * The CRLs by name, each with the URL the certificates above name: `root`, `crlIntermediate`,
   * `revokedIntermediate` (current, signed by their issuer), and two broken ones no certificate names
   * unless a test issues one that does: `wrongSigner` (crlIntermediate's name, signed by `otherRoot`'s
   * key) and `stale` (crlIntermediate's, nextUpdate a day ago).
   */
  readonly crls: Readonly<Record<TestCrlName, TestCrl>>;
  /** Issues another leaf under the intermediate (or `options.issuer`), for custom TNAuthLists or dates. */
  issue(options: LeafOptions): Promise<TestCredential>;
  /** Issues a delegate CA (RFC 9060 §4) under the intermediate (or `options.issuer`). */
  delegate(options: CaOptions): Promise<TestCertificate>;
}

/** Names of the test PKI's CRLs (`TestPki.crls`). */
export type TestCrlName = "root" | "crlIntermediate" | "revokedIntermediate" | "wrongSigner" | "stale";

/** A CRL (RFC 5280 §5) and the URL the test PKI's certificates name for it. */
export interface TestCrl {
  readonly url: string;
  /** DER: what a CRL distribution point serves (application/pkix-crl). */
  readonly der: Uint8Array;
  readonly pem: string;
  readonly crl: X509Crl;
}

export interface LeafOptions {
  readonly tnAuthList?: TnAuthList | null;
  /** A CRL distribution point (RFC 5280 §4.2.1.13) for the leaf: the URL of its issuer's CRL. */
  readonly crlUrl?: string;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly subject?: string;
  /** The issuing CA (default: the PKI's intermediate). */
  readonly issuer?: TestCertificate;
}

export interface CaOptions {
  /** The delegate CA's own scope; `null` or absent = no TNAuthList extension. */
  readonly tnAuthList?: TnAuthList | null;
  readonly name?: string;
  /** The issuing CA (default: the PKI's intermediate). */
  readonly issuer?: TestCertificate;
  /** A CRL distribution point for the CA certificate: the URL of its issuer's CRL. */
  readonly crlUrl?: string;
}

export interface CrlOptions {
  /** Serial numbers (hex, as `X509Certificate.serialNumber`) or certificates to list as revoked. */
  readonly revoked?: readonly (X509Certificate | string)[];
  readonly thisUpdate?: Date;
  readonly nextUpdate?: Date;
  /** Sign with this key instead of the CA's own (a forged CRL). */
  readonly signingKey?: CryptoKey;
}

/** Default TNAuthList of the valid leaf: one SPC, one range of 100 numbers, one single number. */
export const DEFAULT_TEST_TN_AUTH_LIST: TnAuthList = [
  { type: "spc", spc: "709J" },
  { type: "range", start: "12025550100", count: 100 },
  { type: "one", tn: "12155551212" },
];

async function keyPair(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
}

function serial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive INTEGER
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function caCertificate(
  name: string,
  issuer: TestCertificate | undefined,
  options: {
    ca: boolean;
    notBefore: Date;
    notAfter: Date;
    tnAuthList?: TnAuthList | null;
    crlUrl?: string | undefined;
  },
): Promise<TestCertificate> {
  const keys = await keyPair();
  const extensions: Extension[] = [
    new BasicConstraintsExtension(options.ca, undefined, true),
    new KeyUsagesExtension(
      options.ca ? KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign : KeyUsageFlags.digitalSignature,
      true,
    ),
    await SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (options.tnAuthList)
    extensions.push(new Extension(TN_AUTH_LIST_OID, false, encodeTnAuthList(options.tnAuthList)));
  if (options.crlUrl !== undefined) extensions.push(new CRLDistributionPointsExtension([options.crlUrl]));
  const subject = `CN=${name}, O=${TEST_PKI_LABEL}`;
  const certificate =
    issuer === undefined
      ? await X509CertificateGenerator.createSelfSigned({
          serialNumber: serial(),
          name: subject,
          keys,
          notBefore: options.notBefore,
          notAfter: options.notAfter,
          signingAlgorithm: SIGN,
          extensions,
        })
      : await X509CertificateGenerator.create({
          serialNumber: serial(),
          subject,
          issuer: issuer.certificate.subject,
          publicKey: keys.publicKey,
          signingKey: issuer.keys.privateKey,
          notBefore: options.notBefore,
          notAfter: options.notAfter,
          signingAlgorithm: SIGN,
          extensions: [...extensions, await AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey)],
        });
  return { certificate, keys };
}

async function leafCredential(
  defaultIssuer: TestCertificate,
  options: LeafOptions,
  now: Date,
): Promise<TestCredential> {
  const issuer = options.issuer ?? defaultIssuer;
  const keys = await keyPair();
  const tnAuthList = options.tnAuthList === undefined ? DEFAULT_TEST_TN_AUTH_LIST : options.tnAuthList;
  const extensions: Extension[] = [
    new BasicConstraintsExtension(false, undefined, true),
    new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    await SubjectKeyIdentifierExtension.create(keys.publicKey),
    await AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
  ];
  if (tnAuthList !== null)
    extensions.push(new Extension(TN_AUTH_LIST_OID, false, encodeTnAuthList(tnAuthList)));
  if (options.crlUrl !== undefined) extensions.push(new CRLDistributionPointsExtension([options.crlUrl]));
  const certificate = await X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${options.subject ?? "SHAKEN 709J"}, O=${TEST_PKI_LABEL}`,
    issuer: issuer.certificate.subject,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    notBefore: options.notBefore ?? new Date(now.getTime() - DAY),
    notAfter: options.notAfter ?? new Date(now.getTime() + 30 * DAY),
    signingAlgorithm: SIGN,
    extensions,
  });
  const chain = [certificate, ...(issuer.path ?? [issuer.certificate])];
  return {
    privateKey: keys.privateKey,
    publicKey: keys.publicKey,
    chain,
    pem: PemConverter.encode(
      chain.map((c) => c.rawData),
      "CERTIFICATE",
    ),
    der: chain.map((c) => new Uint8Array(c.rawData)),
  };
}

/**
 * Issues a delegate CA under `defaultIssuer` (or `options.issuer`): cA true, keyCertSign, and the
 * TNAuthList given, valid from a day before `now` for a year.
 */
async function delegateCa(
  defaultIssuer: TestCertificate,
  options: CaOptions,
  now: Date,
): Promise<TestCertificate> {
  const issuer = options.issuer ?? defaultIssuer;
  const ca = await caCertificate(options.name ?? "Test Delegate CA", issuer, {
    ca: true,
    notBefore: new Date(now.getTime() - DAY),
    notAfter: new Date(now.getTime() + 365 * DAY),
    tnAuthList: options.tnAuthList ?? null,
    crlUrl: options.crlUrl,
  });
  return { ...ca, path: [ca.certificate, ...(issuer.path ?? [issuer.certificate])] };
}

/**
 * Issues a CRL (RFC 5280 §5, v2, ECDSA P-256 / SHA-256) for `ca`: thisUpdate an hour before `now`,
 * nextUpdate a week after, unless given; signed with the CA's key unless `signingKey` is given.
 */
async function issueCrl(ca: TestCertificate, options: CrlOptions, now: Date): Promise<X509Crl> {
  return X509CrlGenerator.create({
    issuer: ca.certificate.subjectName,
    thisUpdate: options.thisUpdate ?? new Date(now.getTime() - DAY / 24),
    nextUpdate: options.nextUpdate ?? new Date(now.getTime() + 7 * DAY),
    entries: (options.revoked ?? []).map((r) => ({
      serialNumber: typeof r === "string" ? r : r.serialNumber,
      revocationDate: new Date(now.getTime() - DAY / 24),
    })),
    signingKey: options.signingKey ?? ca.keys.privateKey,
    signingAlgorithm: SIGN,
  });
}

function testCrl(url: string, crl: X509Crl): TestCrl {
  return { url, der: new Uint8Array(crl.rawData), pem: crl.toString("pem"), crl };
}

/**
 * Builds a fresh test PKI (about 10 key generations; a few tens of milliseconds).
 *
 * @example
 * const pki = await createTestPki();
 * const validator = new CertificateValidator({ anchors: [pki.root.certificate] });
 */
export async function createTestPki(
  options: { now?: Date; tnAuthList?: TnAuthList; crlBaseUrl?: string } = {},
): Promise<TestPki> {
  const now = options.now ?? new Date();
  const crlBase = options.crlBaseUrl ?? TEST_CRL_BASE_URL;
  const crlUrl = {
    root: `${crlBase}/root.crl`,
    crlIntermediate: `${crlBase}/crl-intermediate.crl`,
    revokedIntermediate: `${crlBase}/revoked-intermediate.crl`,
    wrongSigner: `${crlBase}/wrong-signer.crl`,
    stale: `${crlBase}/stale.crl`,
  } as const;
  const caDates = {
    notBefore: new Date(now.getTime() - 2 * DAY),
    notAfter: new Date(now.getTime() + 3650 * DAY),
  };
  const root = await caCertificate("Test STI-PA Root", undefined, { ca: true, ...caDates });
  const intermediate = await caCertificate("Test STI-CA Intermediate", root, { ca: true, ...caDates });
  const otherRoot = await caCertificate("Unrelated Root", undefined, { ca: true, ...caDates });
  const otherIntermediate = await caCertificate("Unrelated Intermediate", otherRoot, {
    ca: true,
    ...caDates,
  });
  const nonCa = await caCertificate("Not A CA", root, { ca: false, ...caDates });
  const issue = (leaf: LeafOptions) => leafCredential(intermediate, leaf, now);
  const crlIntermediate: TestCertificate = await caCertificate("Test STI-CA CRL Intermediate", root, {
    ca: true,
    ...caDates,
    crlUrl: crlUrl.root,
  });
  const revokedIntermediate: TestCertificate = await caCertificate("Test STI-CA Revoked Intermediate", root, {
    ca: true,
    ...caDates,
    crlUrl: crlUrl.root,
  });
  // Subjects of their own: the issuance quota is per subject and scope (src/tokens/quota.ts).
  const crlValid = await issue({
    issuer: crlIntermediate,
    crlUrl: crlUrl.crlIntermediate,
    subject: "SHAKEN 709J CRL",
  });
  const crlRevokedLeaf = await issue({
    issuer: crlIntermediate,
    crlUrl: crlUrl.crlIntermediate,
    subject: "SHAKEN 709J revoked",
  });
  const underRevokedIntermediate = await issue({
    issuer: revokedIntermediate,
    crlUrl: crlUrl.revokedIntermediate,
    subject: "SHAKEN 709J under revoked CA",
  });
  const crls: Record<TestCrlName, TestCrl> = {
    root: testCrl(crlUrl.root, await issueCrl(root, { revoked: [revokedIntermediate.certificate] }, now)),
    crlIntermediate: testCrl(
      crlUrl.crlIntermediate,
      await issueCrl(crlIntermediate, { revoked: [crlRevokedLeaf.chain[0] as X509Certificate] }, now),
    ),
    revokedIntermediate: testCrl(crlUrl.revokedIntermediate, await issueCrl(revokedIntermediate, {}, now)),
    wrongSigner: testCrl(
      crlUrl.wrongSigner,
      await issueCrl(crlIntermediate, { signingKey: otherRoot.keys.privateKey }, now),
    ),
    stale: testCrl(
      crlUrl.stale,
      await issueCrl(
        crlIntermediate,
        { thisUpdate: new Date(now.getTime() - 8 * DAY), nextUpdate: new Date(now.getTime() - DAY) },
        now,
      ),
    ),
  };
  return {
    root,
    intermediate,
    otherRoot,
    valid: await issue({ tnAuthList: options.tnAuthList ?? DEFAULT_TEST_TN_AUTH_LIST }),
    expired: await issue({
      notBefore: new Date(now.getTime() - 60 * DAY),
      notAfter: new Date(now.getTime() - DAY),
    }),
    notYetValid: await issue({
      notBefore: new Date(now.getTime() + DAY),
      notAfter: new Date(now.getTime() + 60 * DAY),
    }),
    wrongAnchor: await leafCredential(otherIntermediate, {}, now),
    nonCaIntermediate: await leafCredential(nonCa, {}, now),
    noTnAuthList: await issue({ tnAuthList: null }),
    crlIntermediate,
    revokedIntermediate,
    crlValid,
    crlRevokedLeaf,
    underRevokedIntermediate,
    crls,
    issue,
    delegate: (ca: CaOptions) => delegateCa(intermediate, ca, now),
  };
}

/**
 * `issueTestLeaf` issues a leaf and `issueTestDelegateCa` a delegate CA under any test CA (used to
 * rebuild a serialised test PKI inside workerd tests).
 */
export { delegateCa as issueTestDelegateCa, issueCrl as issueTestCrl, leafCredential as issueTestLeaf };
