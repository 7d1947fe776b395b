/**
 * The CRL checker (src/stir/crl.ts) behind CertificateValidator: revoked leaves and intermediates,
 * fail-closed answers when a named CRL cannot be had or used, the x5u URL rules, and the cache until
 * nextUpdate. The CRL repository is an injected fetch serving the test PKI's real CRL bytes (a test
 * double of the network: the point is what the repository answers), plus one real loopback server.
 */
import "reflect-metadata";
import { AsnConvert } from "@peculiar/asn1-schema";
import { DistributionPointName, GeneralName, IssuingDistributionPoint } from "@peculiar/asn1-x509";
import { Extension, X509CrlGenerator } from "@peculiar/x509";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertificateValidator } from "../../src/stir/cert-validate.js";
import { CrlChecker, type CrlCheckerOptions, type CrlFailureReason } from "../../src/stir/crl.js";
import type { RevocationChecker } from "../../src/stir/revocation.js";
import { createTestPki, issueTestCrl, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { type CrlServer, startCrlServer } from "../helpers/crl-server.js";

const DAY = 86_400_000;
let pki: TestPki;
let now: Date;

beforeAll(async () => {
  now = new Date();
  pki = await createTestPki({ now });
});

/** A CRL repository: URL -> body (or a Response factory); anything else 404. Counts requests. */
type Served = Uint8Array | (() => Response | Promise<Response>);

function repository(entries: Record<string, Served> = {}) {
  const served = new Map(Object.entries(entries));
  const requests: string[] = [];
  const fetch = (async (input: RequestInfo | URL) => {
    const url = String(input);
    requests.push(url);
    const body = served.get(url);
    if (body === undefined) return new Response("not here", { status: 404 });
    if (typeof body === "function") return body();
    return new Response(body, { status: 200, headers: { "content-type": "application/pkix-crl" } });
  }) as typeof globalThis.fetch;
  return { fetch, requests, served };
}

/** The PKI's three current CRLs at their URLs. */
function currentCrls(): Record<string, Uint8Array> {
  const { root, crlIntermediate, revokedIntermediate } = pki.crls;
  return {
    [root.url]: root.der,
    [crlIntermediate.url]: crlIntermediate.der,
    [revokedIntermediate.url]: revokedIntermediate.der,
  };
}

function setup(entries: Record<string, Served> = currentCrls(), options: CrlCheckerOptions = {}) {
  const repo = repository(entries);
  const failures: CrlFailureReason[] = [];
  const crl = new CrlChecker({ fetch: repo.fetch, onFailure: (r) => failures.push(r), ...options });
  const validator = new CertificateValidator({ anchors: [pki.root.certificate], revocation: crl });
  return { repo, crl, validator, failures };
}

const validate = (v: CertificateValidator, cred: TestCredential, at: Date = now) => v.validate(cred.pem, at);

describe("CRL checking of validated paths", () => {
  it("accepts an unrevoked leaf, checking the leaf and its intermediate (two CRLs)", async () => {
    const { repo, validator } = setup();
    await expect(validate(validator, pki.crlValid)).resolves.toMatchObject({ path: expect.any(Array) });
    expect(new Set(repo.requests)).toEqual(new Set([pki.crls.crlIntermediate.url, pki.crls.root.url]));
  });

  it("refuses a revoked leaf (listed on its intermediate's CRL): CERT_REVOKED", async () => {
    const { validator } = setup();
    await expect(validate(validator, pki.crlRevokedLeaf)).rejects.toMatchObject({
      code: "CERT_REVOKED",
      status: 403,
    });
  });

  it("refuses a leaf under a revoked intermediate (listed on the root's CRL): CERT_REVOKED", async () => {
    const { validator } = setup();
    await expect(validate(validator, pki.underRevokedIntermediate)).rejects.toMatchObject({
      code: "CERT_REVOKED",
    });
  });

  it("does not check a certificate that names no CRL distribution point (no fetch)", async () => {
    const { repo, validator } = setup({});
    await expect(validate(validator, pki.valid)).resolves.toBeDefined();
    expect(repo.requests).toEqual([]);
  });

  it("without a checker the revoked leaf passes (what the option adds)", async () => {
    const plain = new CertificateValidator({ anchors: [pki.root.certificate] });
    await expect(validate(plain, pki.crlRevokedLeaf)).resolves.toBeDefined();
  });

  it("the path is checked as built, so a revoked intermediate is found whatever order x5c gives", async () => {
    const { validator } = setup();
    const [leaf, ...rest] = pki.underRevokedIntermediate.der;
    await expect(
      validator.validate([leaf as Uint8Array, ...rest, new Uint8Array(pki.root.certificate.rawData)], now),
    ).rejects.toMatchObject({ code: "CERT_REVOKED" });
  });
});

describe("fail closed: CERT_REVOCATION_UNKNOWN", () => {
  it("the CRL cannot be fetched (404)", async () => {
    const entries = currentCrls();
    delete entries[pki.crls.crlIntermediate.url];
    const { validator, failures } = setup(entries);
    await expect(validate(validator, pki.crlValid)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
      status: 403,
    });
    expect(failures).toEqual(["status"]);
  });

  it("the network fails", async () => {
    const { validator, failures } = setup({
      ...currentCrls(),
      [pki.crls.root.url]: () => Promise.reject(new TypeError("fetch failed")),
    });
    await expect(validate(validator, pki.crlValid)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(failures).toEqual(["network"]);
  });

  it("the repository redirects (no redirects are followed)", async () => {
    const { validator, failures } = setup({
      ...currentCrls(),
      [pki.crls.crlIntermediate.url]: () =>
        new Response(null, { status: 302, headers: { location: pki.crls.root.url } }),
    });
    await expect(validate(validator, pki.crlValid)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(failures).toEqual(["status"]);
  });

  it("the CRL is too large", async () => {
    const { validator, failures } = setup(currentCrls(), { maxBytes: 64 });
    await expect(validate(validator, pki.crlValid)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(failures).toEqual(["too-large"]);
  });

  it("the body is not a DER CRL (PEM text, garbage)", async () => {
    for (const body of [
      new TextEncoder().encode(pki.crls.crlIntermediate.pem),
      new Uint8Array([48, 3, 1, 1, 0]),
    ]) {
      const { validator, failures } = setup({ ...currentCrls(), [pki.crls.crlIntermediate.url]: body });
      await expect(validate(validator, pki.crlValid)).rejects.toMatchObject({
        code: "CERT_REVOCATION_UNKNOWN",
      });
      expect(failures).toEqual(["malformed"]);
    }
  });

  it("the CRL is signed by the wrong key (a forged CRL that lists nothing)", async () => {
    const { validator, failures } = setup({
      ...currentCrls(),
      [pki.crls.crlIntermediate.url]: pki.crls.wrongSigner.der,
    });
    // The forged CRL would clear the revoked leaf; it is refused instead.
    await expect(validate(validator, pki.crlRevokedLeaf)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(failures).toEqual(["signature"]);
  });

  it("the CRL names another issuer (the root's CRL served for the intermediate)", async () => {
    const { validator, failures } = setup({
      ...currentCrls(),
      [pki.crls.crlIntermediate.url]: pki.crls.root.der,
    });
    await expect(validate(validator, pki.crlValid)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(failures).toEqual(["issuer"]);
  });

  it("the CRL is stale (nextUpdate passed)", async () => {
    const { validator, failures } = setup({
      ...currentCrls(),
      [pki.crls.crlIntermediate.url]: pki.crls.stale.der,
    });
    await expect(validate(validator, pki.crlRevokedLeaf)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(failures).toEqual(["stale"]);
  });

  it("the CRL is from the future (thisUpdate beyond the skew) or has no nextUpdate", async () => {
    const future = await issueTestCrl(
      pki.crlIntermediate,
      { thisUpdate: new Date(now.getTime() + DAY) },
      now,
    );
    const noNext = await X509CrlGenerator.create({
      issuer: pki.crlIntermediate.certificate.subjectName,
      thisUpdate: new Date(now.getTime() - 60_000),
      signingKey: pki.crlIntermediate.keys.privateKey,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    });
    for (const crl of [future, noNext]) {
      const { validator, failures } = setup({
        ...currentCrls(),
        [pki.crls.crlIntermediate.url]: new Uint8Array(crl.rawData),
      });
      await expect(validate(validator, pki.crlValid)).rejects.toMatchObject({
        code: "CERT_REVOCATION_UNKNOWN",
      });
      expect(failures).toEqual(["stale"]);
    }
  });

  it("the CRL has an unknown critical extension, or is a delta CRL", async () => {
    const sign = { name: "ECDSA", hash: "SHA-256" };
    const base = {
      issuer: pki.crlIntermediate.certificate.subjectName,
      thisUpdate: new Date(now.getTime() - 60_000),
      nextUpdate: new Date(now.getTime() + DAY),
      signingKey: pki.crlIntermediate.keys.privateKey,
      signingAlgorithm: sign,
    };
    const unknownCritical = await X509CrlGenerator.create({
      ...base,
      extensions: [new Extension("1.3.6.1.4.1.55555.1", true, new Uint8Array([5, 0]))],
    });
    const delta = await X509CrlGenerator.create({
      ...base,
      extensions: [new Extension("2.5.29.27", true, new Uint8Array([2, 1, 1]))],
    });
    for (const crl of [unknownCritical, delta]) {
      const { validator, failures } = setup({
        ...currentCrls(),
        [pki.crls.crlIntermediate.url]: new Uint8Array(crl.rawData),
      });
      await expect(validate(validator, pki.crlValid)).rejects.toMatchObject({
        code: "CERT_REVOCATION_UNKNOWN",
      });
      expect(failures).toEqual(["unsupported"]);
    }
  });

  it("a CRL whose issuing distribution point names another partition is not used", async () => {
    const idp = (url: string) =>
      new Extension(
        "2.5.29.28",
        true,
        AsnConvert.serialize(
          new IssuingDistributionPoint({
            distributionPoint: new DistributionPointName({
              fullName: [new GeneralName({ uniformResourceIdentifier: url })],
            }),
          }),
        ),
      );
    const crlFor = (url: string) =>
      X509CrlGenerator.create({
        issuer: pki.crlIntermediate.certificate.subjectName,
        thisUpdate: new Date(now.getTime() - 60_000),
        nextUpdate: new Date(now.getTime() + DAY),
        extensions: [idp(url)],
        signingKey: pki.crlIntermediate.keys.privateKey,
        signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
      });
    const other = await crlFor("https://crl.stir-oob-test.example/partition-2.crl");
    const own = await crlFor(pki.crls.crlIntermediate.url);
    const refused = setup({
      ...currentCrls(),
      [pki.crls.crlIntermediate.url]: new Uint8Array(other.rawData),
    });
    await expect(validate(refused.validator, pki.crlValid)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(refused.failures).toEqual(["unsupported"]);
    const accepted = setup({ ...currentCrls(), [pki.crls.crlIntermediate.url]: new Uint8Array(own.rawData) });
    await expect(validate(accepted.validator, pki.crlValid)).resolves.toBeDefined();
  });
});

describe("CRL URLs follow the x5u URL policy", () => {
  it("a distribution point over plain http, or an IP literal, is not fetched: unknown", async () => {
    for (const url of [
      "http://crl.stir-oob-test.example/a.crl",
      "https://192.0.2.7/a.crl",
      "https://localhost/a.crl",
    ]) {
      const leaf = await pki.issue({ issuer: pki.crlIntermediate, crlUrl: url });
      const { repo, validator, failures } = setup();
      await expect(validate(validator, leaf)).rejects.toMatchObject({ code: "CERT_REVOCATION_UNKNOWN" });
      expect(repo.requests).not.toContain(url);
      expect(failures).toEqual(["url"]);
    }
  });

  it("an operator allow-list that does not name the CRL host refuses it", async () => {
    const { repo, validator } = setup(currentCrls(), { policy: { allowedHosts: ["certs.example.net"] } });
    await expect(validate(validator, pki.crlValid)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(repo.requests).toEqual([]);
    const listed = setup(currentCrls(), { policy: { allowedHosts: ["*.stir-oob-test.example"] } });
    await expect(validate(listed.validator, pki.crlValid)).resolves.toBeDefined();
  });

  describe("a real CRL server on loopback (development switch)", () => {
    let server: CrlServer;
    let local: TestPki;
    beforeAll(async () => {
      server = await startCrlServer();
      local = server.pki;
    });
    afterAll(() => server.close());

    it("fetched over http only with allowLoopback; refused otherwise", async () => {
      const on = new CertificateValidator({
        anchors: [local.root.certificate],
        revocation: new CrlChecker({ policy: { allowLoopback: true } }),
      });
      await expect(on.validate(local.crlValid.pem)).resolves.toBeDefined();
      await expect(on.validate(local.crlRevokedLeaf.pem)).rejects.toMatchObject({ code: "CERT_REVOKED" });
      await expect(on.validate(local.underRevokedIntermediate.pem)).rejects.toMatchObject({
        code: "CERT_REVOKED",
      });
      expect(server.requests.length).toBeGreaterThan(0);
      const before = server.requests.length;
      const off = new CertificateValidator({
        anchors: [local.root.certificate],
        revocation: new CrlChecker(),
      });
      await expect(off.validate(local.crlValid.pem)).rejects.toMatchObject({
        code: "CERT_REVOCATION_UNKNOWN",
      });
      expect(server.requests.length).toBe(before);
    });
  });
});

describe("caching until nextUpdate", () => {
  it("does not refetch a CRL within its nextUpdate, across chains and fresh validations", async () => {
    const { repo, crl } = setup();
    const v1 = new CertificateValidator({ anchors: [pki.root.certificate], revocation: crl, cacheSize: 1 });
    await validate(v1, pki.crlValid);
    await expect(validate(v1, pki.crlRevokedLeaf)).rejects.toMatchObject({ code: "CERT_REVOKED" });
    await validate(v1, pki.crlValid, new Date(now.getTime() + 6 * DAY)); // evicted: validated again
    expect(repo.requests.length).toBe(2); // crl-intermediate.crl and root.crl, once each
    expect(crl.fetchCount).toBe(2);
    expect(crl.cacheSize).toBe(2);
  });

  it("past nextUpdate the CRL is fetched again; the same stale CRL is then refused", async () => {
    const { repo, validator, failures } = setup();
    await validate(validator, pki.crlValid);
    const later = new Date(now.getTime() + 8 * DAY); // CRLs' nextUpdate is now + 7 days
    await expect(validate(validator, pki.crlValid, later)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(repo.requests.filter((u) => u === pki.crls.crlIntermediate.url).length).toBe(2);
    expect(failures).toEqual(["stale"]);
  });

  it("a cached validated chain does not outlive its revocation: the next CRL revokes it on a cache hit", async () => {
    const first = await issueTestCrl(
      pki.crlIntermediate,
      { nextUpdate: new Date(now.getTime() + 60_000) },
      now,
    );
    const { repo, validator } = setup({
      ...currentCrls(),
      [pki.crls.crlIntermediate.url]: new Uint8Array(first.rawData),
    });
    await validate(validator, pki.crlValid);
    expect(validator.cacheSize).toBe(1);
    // The CA revokes the leaf and publishes its next CRL.
    const next = await issueTestCrl(pki.crlIntermediate, { revoked: [pki.crlValid.chain[0]!] }, now);
    repo.served.set(pki.crls.crlIntermediate.url, new Uint8Array(next.rawData));
    // Within the first CRL's nextUpdate the cached CRL answers (no refetch), so still accepted...
    await validate(validator, pki.crlValid, new Date(now.getTime() + 30_000));
    // ...after it, the validator's cache hit (TTL 1 h) still consults the checker, which refetches.
    await expect(validate(validator, pki.crlValid, new Date(now.getTime() + 120_000))).rejects.toMatchObject({
      code: "CERT_REVOKED",
    });
    expect(validator.cacheSize).toBe(1);
  });

  it("the validator consults its checker on every cache hit", async () => {
    let calls = 0;
    let revoked = false;
    const checker: RevocationChecker = {
      async check(path) {
        calls++;
        expect(path.at(-1)?.subject).toBe(pki.root.certificate.subject);
        if (revoked) throw new (await import("../../src/errors.js")).CpsError("CERT_REVOKED", "revoked");
      },
    };
    const validator = new CertificateValidator({ anchors: [pki.root.certificate], revocation: checker });
    await validate(validator, pki.valid);
    await validate(validator, pki.valid);
    expect(calls).toBe(2);
    revoked = true;
    await expect(validate(validator, pki.valid)).rejects.toMatchObject({ code: "CERT_REVOKED" });
  });

  it("concurrent checks share one fetch per URL; failures are not cached", async () => {
    const entries = currentCrls();
    const { repo, validator, crl } = setup({
      ...entries,
      [pki.crls.root.url]: () =>
        new Promise<Response>((r) =>
          setTimeout(() => r(new Response(pki.crls.root.der, { status: 200 })), 20),
        ),
    });
    const leaves = await Promise.all(
      [1, 2, 3].map(() => pki.issue({ issuer: pki.crlIntermediate, crlUrl: pki.crls.crlIntermediate.url })),
    );
    await Promise.all(leaves.map((l) => validate(validator, l)));
    expect(repo.requests.filter((u) => u === pki.crls.root.url).length).toBe(1);
    expect(crl.fetchCount).toBe(2);

    const down = setup({});
    await expect(validate(down.validator, pki.crlValid)).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    down.repo.served.set(pki.crls.crlIntermediate.url, pki.crls.crlIntermediate.der);
    down.repo.served.set(pki.crls.root.url, pki.crls.root.der);
    await expect(validate(down.validator, pki.crlValid)).resolves.toBeDefined();
  });

  it("the validated path is leaf first, anchor last; checkRevocation re-checks a kept result", async () => {
    const { repo, validator } = setup();
    const v = await validate(validator, pki.crlValid);
    expect(v.path.map((c) => c.subject)).toEqual([
      pki.crlValid.chain[0]?.subject,
      pki.crlIntermediate.certificate.subject,
      pki.root.certificate.subject,
    ]);
    await expect(validator.checkRevocation(v, now)).resolves.toBeUndefined();
    // Past the CRLs' nextUpdate, the kept result is refetched and, still stale, no longer vouched for.
    await expect(validator.checkRevocation(v, new Date(now.getTime() + 8 * DAY))).rejects.toMatchObject({
      code: "CERT_REVOCATION_UNKNOWN",
    });
    expect(repo.requests.length).toBe(3);
  });

  it("bounds the cache in entries", async () => {
    const { crl } = setup(currentCrls(), { cacheEntries: 1 });
    const v = new CertificateValidator({ anchors: [pki.root.certificate], revocation: crl });
    await validate(v, pki.crlValid);
    expect(crl.cacheSize).toBe(1);
  });
});
