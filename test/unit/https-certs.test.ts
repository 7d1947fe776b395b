/**
 * The local HTTPS certificate repository (test/helpers/https-certs.ts): it serves a PEM chain at a
 * URL over TLS with a server certificate for 127.0.0.1 from its own test CA; a client trusts it by
 * that CA only (node:https with `ca`, and Node's fetch through NODE_EXTRA_CA_CERTS, the way `wrangler
 * dev` is given it), and a client that does not trust the CA is refused.
 */
import "reflect-metadata";
import { execFile } from "node:child_process";
import { request } from "node:https";
import { X509Certificate } from "@peculiar/x509";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";
import { type HttpsCertServer, startHttpsCertServer } from "../helpers/https-certs.js";

let pki: TestPki;
let certs: HttpsCertServer;
beforeAll(async () => {
  pki = await createTestPki();
  certs = await startHttpsCertServer();
});
afterAll(async () => {
  await certs?.close();
});

/** GET with node:https, trusting `ca` only (no system CAs). */
function get(url: string, ca: string | undefined): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "GET", ...(ca === undefined ? {} : { ca }) }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

/** Node's own fetch in a fresh process, with NODE_EXTRA_CA_CERTS set or not: status, or the error code. */
function fetchInChild(url: string, caFile: string | undefined): Promise<string> {
  const script =
    "fetch(process.argv[1]).then(async (r) => console.log(r.status, (await r.text()).length)," +
    " (e) => console.log('ERR', e.cause?.code ?? e.message))";
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  if (caFile !== undefined) env.NODE_EXTRA_CA_CERTS = caFile;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["-e", script, url], { env, timeout: 20_000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout.trim()),
    );
  });
}

describe("local https certificate repository", () => {
  it("serves a PEM chain at its URL to a client that trusts the test CA", async () => {
    const url = certs.serve("/sp/valid.pem", pki.valid.pem);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/sp\/valid\.pem$/);
    const res = await get(url, certs.caPem);
    expect(res).toEqual({ status: 200, type: "application/pem-certificate-chain", body: pki.valid.pem });
    expect(certs.requests.at(-1)).toEqual({ method: "GET", path: "/sp/valid.pem", status: 200 });
  });

  it("answers 404 for a path it does not serve, and after remove()", async () => {
    expect((await get(`${certs.url}/nothing.pem`, certs.caPem)).status).toBe(404);
    const url = certs.serve("/gone.pem", pki.valid.pem);
    certs.remove("/gone.pem");
    expect((await get(url, certs.caPem)).status).toBe(404);
  });

  it("is refused by a client that does not trust its CA", async () => {
    await expect(get(`${certs.url}/nothing.pem`, undefined)).rejects.toMatchObject({
      code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/),
    });
    // Another test CA's server certificate does not pass with this CA either.
    const other = await startHttpsCertServer();
    try {
      await expect(get(`${other.url}/x.pem`, certs.caPem)).rejects.toBeTruthy();
    } finally {
      await other.close();
    }
  });

  it("is trusted by Node's fetch through NODE_EXTRA_CA_CERTS (how wrangler dev is given it), not without", async () => {
    const url = certs.serve("/child.pem", pki.valid.pem);
    expect(await fetchInChild(url, certs.caFile)).toBe(`200 ${pki.valid.pem.length}`);
    expect(await fetchInChild(url, undefined)).toMatch(/^ERR (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED)/);
  }, 30_000);

  it("presents a server certificate for the IP 127.0.0.1, issued by its CA, and a CA PEM file", async () => {
    const { readFile } = await import("node:fs/promises");
    expect(await readFile(certs.caFile, "utf8")).toBe(certs.caPem);
    const ca = new X509Certificate(certs.caPem);
    expect(ca.subject).toMatch(/TEST ONLY/);
    expect(await ca.isSelfSigned()).toBe(true);
  });
});
