/**
 * TEST ONLY: a local HTTPS server on 127.0.0.1 that serves PEM certificate chains at URLs, the way a
 * SHAKEN certificate repository serves what a PASSporT's or an access JWT's `x5u` names (RFC 8225
 * §4.3, RFC 8226 §10: fetched over https). The CPS under `wrangler dev` fetches from it when it runs
 * with ALLOW_LOOPBACK_X5U (src/stir/x5u.ts `checkX5uUrl`: https on loopback, any port).
 *
 * Its TLS certificate is issued for the IP address 127.0.0.1 by a TLS test CA made here (a key and a
 * self-signed CA certificate, fresh per server, never written anywhere but the CA's PEM file below).
 * That CA is unrelated to the STIR test PKI whose chains it serves: one is who the web server is, the
 * other who signed a PASSporT. Clients trust the TLS CA by its PEM file: Node (and `wrangler dev`,
 * whose miniflare hands it to workerd as a trusted certificate) through NODE_EXTRA_CA_CERTS.
 */
import "reflect-metadata";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from "@peculiar/x509";

const ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY = 86_400_000;
/** Marker in the TLS test certificates' subjects (the STIR test PKI has its own). */
const LABEL = "TEST ONLY - stir-oob local https";

/** A TLS test CA and a server certificate it issued for 127.0.0.1, as PEM. */
export interface TlsTestCertificates {
  /** The CA's certificate: what a client must trust. */
  readonly caPem: string;
  /** The server certificate (SAN IP 127.0.0.1, serverAuth) followed by nothing: the CA is the root. */
  readonly certPem: string;
  /** The server certificate's private key, PKCS #8 PEM. */
  readonly keyPem: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, "$&\n")}-----END ${label}-----\n`;
}

function serial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // a positive INTEGER
  return Buffer.from(bytes).toString("hex");
}

/** Makes a TLS test CA and a server certificate for `ip` (default 127.0.0.1) under it. */
export async function createTlsTestCertificates(ip = "127.0.0.1"): Promise<TlsTestCertificates> {
  const now = Date.now();
  const notBefore = new Date(now - DAY);
  const notAfter = new Date(now + 30 * DAY);
  const caKeys = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const ca = await X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Local HTTPS Test CA, O=${LABEL}`,
    keys: caKeys,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    extensions: [
      new BasicConstraintsExtension(true, 0, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      await SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keys = (await crypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${ip}, O=${LABEL}`,
    issuer: ca.subject,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    notBefore,
    notAfter,
    signingAlgorithm: SIGN,
    extensions: [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth]),
      // RFC 6125 / RFC 9525: an IP address is matched against an iPAddress SAN only, never the CN.
      new SubjectAlternativeNameExtension([{ type: "ip", value: ip }]),
      await SubjectKeyIdentifierExtension.create(keys.publicKey),
      await AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return {
    caPem: ca.toString("pem"),
    certPem: cert.toString("pem"),
    keyPem: pem("PRIVATE KEY", (await crypto.subtle.exportKey("pkcs8", keys.privateKey)) as ArrayBuffer),
  };
}

/** One request the server answered (for tests that check the CPS did, or did not, fetch). */
export interface HttpsCertRequest {
  readonly method: string;
  readonly path: string;
  readonly status: number;
}

export interface HttpsCertServer {
  /** Base URL, `https://127.0.0.1:<port>` (no trailing slash). */
  readonly url: string;
  /** The TLS test CA, PEM, and a file holding it (mode 0600): the value for NODE_EXTRA_CA_CERTS. */
  readonly caPem: string;
  readonly caFile: string;
  /**
   * Serves `body` (a PEM chain, leaf first) at `path` (starting with "/") as
   * application/pem-certificate-chain; returns its full URL. Serving a path again replaces it.
   */
  serve(path: string, body: string): string;
  /** Stops serving `path` (it answers 404 from then on). */
  remove(path: string): void;
  /** Every request answered so far, oldest first. */
  readonly requests: readonly HttpsCertRequest[];
  close(): Promise<void>;
}

/**
 * Starts the server on 127.0.0.1 on a free port. GET (and HEAD) of a served path: 200 with the PEM,
 * `Cache-Control: no-store` unless `cacheControl` says otherwise; anything else: 404 / 405.
 */
export async function startHttpsCertServer(
  options: { cacheControl?: string; certificates?: TlsTestCertificates } = {},
): Promise<HttpsCertServer> {
  const tls = options.certificates ?? (await createTlsTestCertificates());
  const dir = await mkdtemp(join(tmpdir(), "https-certs-"));
  const caFile = join(dir, "tls-test-ca.pem");
  await writeFile(caFile, tls.caPem, { mode: 0o600 });
  const bodies = new Map<string, string>();
  const requests: HttpsCertRequest[] = [];
  const cacheControl = options.cacheControl ?? "no-store";

  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const path = new URL(req.url ?? "/", "https://127.0.0.1").pathname;
    const body = bodies.get(path);
    let status: number;
    if (req.method !== "GET" && req.method !== "HEAD") {
      status = 405;
      res.writeHead(status, { Allow: "GET, HEAD" }).end();
    } else if (body === undefined) {
      status = 404;
      res.writeHead(status, { "Content-Type": "text/plain" }).end("not found\n");
    } else {
      status = 200;
      res.writeHead(status, {
        "Content-Type": "application/pem-certificate-chain",
        "Content-Length": Buffer.byteLength(body),
        "Cache-Control": cacheControl,
      });
      res.end(req.method === "HEAD" ? undefined : body);
    }
    requests.push({ method: req.method ?? "", path, status });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `https://127.0.0.1:${port}`;

  return {
    url,
    caPem: tls.caPem,
    caFile,
    serve(path, body) {
      if (!path.startsWith("/")) throw new Error(`serve: path must start with "/": ${path}`);
      bodies.set(path, body);
      return `${url}${path}`;
    },
    remove(path) {
      bodies.delete(path);
    },
    requests,
    async close() {
      // workerd and Node keep connections alive: drop them so close() does not wait for them.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
