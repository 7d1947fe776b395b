/**
 * A CRL distribution point on loopback for tests that run outside workerd: serves the test PKI's
 * CRLs (createTestPki({ crlBaseUrl })) at their paths over plain http, 404 for anything else, and
 * records every request path so a test can count fetches.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";

export interface CrlServer {
  /** http://127.0.0.1:<port>, the PKI's crlBaseUrl. */
  readonly base: string;
  /** The test PKI whose CRLs are served here. */
  readonly pki: TestPki;
  /** Paths requested so far, in order (a test may empty it: `requests.length = 0`). */
  readonly requests: string[];
  /** The CRL bodies by path: a test may replace or delete one. */
  readonly bodies: Map<string, Uint8Array>;
  close(): Promise<void>;
}

/** Starts the server, then makes a test PKI whose certificates name it as their CRL distribution point. */
export async function startCrlServer(): Promise<CrlServer> {
  const bodies = new Map<string, Uint8Array>();
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const body = bodies.get(req.url ?? "");
    if (body === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "application/pkix-crl" });
    res.end(Buffer.from(body));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pki = await createTestPki({ crlBaseUrl: base });
  for (const c of Object.values(pki.crls)) bodies.set(new URL(c.url).pathname, c.der);
  return {
    base,
    pki,
    bodies,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
