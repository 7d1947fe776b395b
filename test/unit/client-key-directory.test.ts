/**
 * KeyDirectoryClient (src/client/key-directory.ts), the callee's side of RFC 8816 §11: what it sends.
 * A recording `fetch` stands in for the directory here (the real one answers in
 * test/e2e/key-rotation.test.ts and test/e2e/cli.test.ts): the record must verify as the directory
 * verifies it, and the write token must be of the same credential with the right action and audience.
 */
import { decodeJwt, decodeProtectedHeader } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { KeyDirectoryClient } from "../../src/client/key-directory.js";
import { CertificateValidator } from "../../src/stir/cert-validate.js";
import { bearerToken } from "../../src/stir/credential-token.js";
import { generateRecipientKeyPair } from "../../src/stir/envelope.js";
import { verifyKeyRecord } from "../../src/stir/signed-key-record.js";
import { createTestPki, type TestPki } from "../../src/stir/test-pki.js";

const BOB = "22225552222";
let pki: TestPki;

beforeAll(async () => {
  pki = await createTestPki({ tnAuthList: [{ type: "one", tn: BOB }] });
});

function recorder(answer: (req: Request) => Response) {
  const seen: Request[] = [];
  const fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const req = new Request(input, init);
    seen.push(req.clone());
    return answer(req);
  };
  return { seen, fetch };
}

describe("KeyDirectoryClient", () => {
  it("register: PUT /keys/{tn} with a signed record that verifies for the number, and a keys:put token", async () => {
    const { publicKey } = await generateRecipientKeyPair();
    const dir = recorder(() =>
      Response.json({ kid: "k", label: "phone", exp: 1, blocks: [BOB] }, { status: 201 }),
    );
    const client = new KeyDirectoryClient({
      directory: "https://cps.example/keys",
      credential: { privateKey: pki.valid.privateKey, x5c: pki.valid.der },
      fetch: dir.fetch,
    });
    const out = await client.register({
      publicKey,
      tn: "+2-222-555-2222",
      label: "phone",
      lifetimeSeconds: 3600,
    });
    const [req] = dir.seen;
    expect(req?.method).toBe("PUT");
    expect(req?.url).toBe(`https://cps.example/keys/${BOB}`);
    const body = (await req?.json()) as { record: string };
    expect(Object.keys(body)).toEqual(["record"]);
    expect(body.record).toBe(out.record);
    const verified = await verifyKeyRecord(body.record, {
      validator: new CertificateValidator({ anchors: [pki.root.certificate] }),
      tn: BOB,
    });
    expect(verified.publicKey).toEqual(publicKey);
    expect(verified.claims.blocks).toEqual([BOB]);
    expect(verified.claims.exp - verified.claims.nbf).toBe(3600);
    expect(decodeProtectedHeader(body.record).x5c).toHaveLength(pki.valid.der.length);
    const token = bearerToken(req?.headers.get("authorization"));
    expect(decodeJwt(token)).toMatchObject({ action: "keys:put", aud: "https://cps.example" });
  });

  it("remove: DELETE /keys/{tn}?kid= with a keys:delete token; list: the raw entries, 404 = none", async () => {
    const dir = recorder((req) =>
      req.method === "DELETE"
        ? Response.json({ removed: 1 })
        : req.url.endsWith("/33335553333")
          ? Response.json({ type: "about:blank", status: 404, code: "NOT_FOUND" }, { status: 404 })
          : Response.json({ keys: [{ kid: "a", x: "xx", label: "l", record: "r.r.r", extra: 1 }, "junk"] }),
    );
    const client = new KeyDirectoryClient({
      directory: "https://cps.example/keys",
      credential: { privateKey: pki.valid.privateKey, x5c: pki.valid.der },
      fetch: dir.fetch,
    });
    expect(await client.remove("+2 222 555 2222", "a/b")).toEqual({ removed: 1 });
    expect(dir.seen[0]?.url).toBe(`https://cps.example/keys/${BOB}?kid=a%2Fb`);
    expect(decodeJwt(bearerToken(dir.seen[0]?.headers.get("authorization")))).toMatchObject({
      action: "keys:delete",
    });
    expect(await client.list(BOB)).toEqual([{ kid: "a", x: "xx", label: "l", record: "r.r.r" }]);
    expect(await client.list("+3 333 555 3333")).toEqual([]);
    // Without a credential it lists but does not write.
    const reader = new KeyDirectoryClient({ directory: "https://cps.example/keys", fetch: dir.fetch });
    await expect(reader.remove(BOB)).rejects.toThrow(TypeError);
  });
});
