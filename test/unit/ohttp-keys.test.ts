/**
 * OHTTP key configurations (RFC 9458 §3) and the OHTTP_KEYS secret: every defect in the secret is
 * KEYS_INVALID without quoting key material, rotation windows select the live keys, and hostile
 * `application/ohttp-keys` bodies give MALFORMED / UNSUPPORTED_SUITE at the client.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  encodeKeyConfig,
  encodeKeyConfigs,
  generateGatewayKeyEntry,
  type KeyConfig,
  liveKeys,
  OhttpError,
  type OhttpErrorCode,
  parseGatewayKeys,
  parseKeyConfig,
  parseKeyConfigs,
  selectKeyConfig,
} from "../../src/ohttp/index.js";

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectCode(err: unknown, code: OhttpErrorCode): void {
  expect(err).toBeInstanceOf(OhttpError);
  expect((err as OhttpError).code).toBe(code);
}

const CONFIG: KeyConfig = {
  keyId: 7,
  kemId: 0x0020,
  publicKey: new Uint8Array(32).fill(0xab),
  symmetric: [{ kdfId: 1, aeadId: 1 }],
};

describe("OHTTP_KEYS secret", () => {
  it("builds one configuration per key: its id, X25519, HKDF-SHA256 + AES-128-GCM, the derived public key", async () => {
    const keys = await parseGatewayKeys(
      JSON.stringify([generateGatewayKeyEntry(0), generateGatewayKeyEntry(255)]),
    );
    expect(keys.map((k) => k.keyId)).toEqual([0, 255]);
    for (const k of keys) {
      expect(k.publicKey).toHaveLength(32);
      expect(k.config).toEqual({
        keyId: k.keyId,
        kemId: 0x20,
        publicKey: k.publicKey,
        symmetric: [{ kdfId: 1, aeadId: 1 }],
      });
    }
    expect(keys[0]!.publicKey).not.toEqual(keys[1]!.publicKey);
  });

  it("the same private key always gives the same public key (configurations are stable across restarts)", async () => {
    const entry = generateGatewayKeyEntry(1);
    const [a] = await parseGatewayKeys(JSON.stringify([entry]));
    const [b] = await parseGatewayKeys(JSON.stringify([entry]));
    expect(a!.publicKey).toEqual(b!.publicKey);
  });

  const good = generateGatewayKeyEntry(1);
  const bad: [string, string][] = [
    ["not JSON", "{"],
    ["not an array", JSON.stringify(good)],
    ["an empty array", "[]"],
    ["an entry that is not an object", "[1]"],
    ["id 256", JSON.stringify([{ ...good, id: 256 }])],
    ["id -1", JSON.stringify([{ ...good, id: -1 }])],
    ["id 1.5", JSON.stringify([{ ...good, id: 1.5 }])],
    ["id as a string", JSON.stringify([{ ...good, id: "1" }])],
    ["a duplicate id", JSON.stringify([good, { ...generateGatewayKeyEntry(1) }])],
    ["no privateKey", JSON.stringify([{ id: 1 }])],
    ["privateKey not base64url", JSON.stringify([{ ...good, privateKey: `${good.privateKey.slice(1)}+` }])],
    ["a 31-byte privateKey", JSON.stringify([{ ...good, privateKey: good.privateKey.slice(0, 41) }])],
    ["notBefore not a number", JSON.stringify([{ ...good, notBefore: "soon" }])],
    ["a negative notAfter", JSON.stringify([{ ...good, notAfter: -5 }])],
    ["notBefore after notAfter", JSON.stringify([{ ...good, notBefore: 2000, notAfter: 1000 }])],
  ];
  for (const [what, secret] of bad) {
    it(`KEYS_INVALID: ${what}, and the message never quotes the key`, async () => {
      const err = await parseGatewayKeys(secret).catch((e: unknown) => e);
      expectCode(err, "KEYS_INVALID");
      expect((err as OhttpError).status).toBe(500);
      expect((err as OhttpError).message).not.toContain(good.privateKey.slice(0, 10));
    });
  }
});

describe("key rotation windows", () => {
  it("lists keys whose window holds now: notBefore inclusive, notAfter exclusive", async () => {
    const keys = await parseGatewayKeys(
      JSON.stringify([
        generateGatewayKeyEntry(1, { notAfter: 2000 }),
        generateGatewayKeyEntry(2, { notBefore: 1000, notAfter: 3000 }),
        generateGatewayKeyEntry(3, { notBefore: 2000 }),
        generateGatewayKeyEntry(4),
      ]),
    );
    const ids = (now: number) => liveKeys(keys, now).map((k) => k.keyId);
    expect(ids(999)).toEqual([1, 4]);
    expect(ids(1000)).toEqual([1, 2, 4]);
    expect(ids(1999)).toEqual([1, 2, 4]);
    expect(ids(2000)).toEqual([2, 3, 4]); // the overlap: old key 1 gone, 2 and the new 3 both live
    expect(ids(3000)).toEqual([3, 4]);
  });
});

describe("key configurations (RFC 9458 §3)", () => {
  it("round-trips one configuration and a §3.2 list", () => {
    expect(parseKeyConfig(encodeKeyConfig(CONFIG))).toEqual(CONFIG);
    const second = {
      ...CONFIG,
      keyId: 8,
      symmetric: [
        { kdfId: 1, aeadId: 3 },
        { kdfId: 1, aeadId: 1 },
      ],
    };
    expect(parseKeyConfigs(encodeKeyConfigs([CONFIG, second]))).toEqual([CONFIG, second]);
  });

  it("skips a configuration with an unknown KEM (its length prefix steps over it)", () => {
    const unknown = Uint8Array.of(0, 9, 5, 0x00, 0x21, 1, 2, 3, 4, 5, 6); // 9 bytes: X448 id, junk
    const ours = encodeKeyConfigs([CONFIG]);
    const list = new Uint8Array(unknown.length + ours.length);
    list.set(unknown.subarray(0, 2 + 9));
    list.set(ours, 11);
    expect(parseKeyConfigs(list)).toEqual([CONFIG]);
    expectCode(
      thrown(() => parseKeyConfigs(unknown)),
      "UNSUPPORTED_SUITE",
    );
  });

  it("MALFORMED: empty list, truncated entries, bad symmetric lengths, trailing bytes", () => {
    const one = encodeKeyConfig(CONFIG);
    expectCode(
      thrown(() => parseKeyConfigs(new Uint8Array(0))),
      "MALFORMED",
    );
    const list = encodeKeyConfigs([CONFIG]);
    for (let n = 1; n < list.length; n++)
      expectCode(
        thrown(() => parseKeyConfigs(list.subarray(0, n))),
        "MALFORMED",
      );
    const odd = one.slice();
    odd[36] = 6; // symmetric length not a multiple of 4
    expectCode(
      thrown(() => parseKeyConfig(odd)),
      "MALFORMED",
    );
    const none = Uint8Array.of(...one.subarray(0, 35), 0, 0);
    expectCode(
      thrown(() => parseKeyConfig(none)),
      "MALFORMED",
    );
    expectCode(
      thrown(() => parseKeyConfig(Uint8Array.of(...one, 0))),
      "MALFORMED",
    );
  });

  it("encode refuses a configuration that cannot be sent", () => {
    expectCode(
      thrown(() => encodeKeyConfig({ ...CONFIG, keyId: 256 })),
      "MALFORMED",
    );
    expectCode(
      thrown(() => encodeKeyConfig({ ...CONFIG, publicKey: new Uint8Array(31) })),
      "MALFORMED",
    );
    expectCode(
      thrown(() => encodeKeyConfig({ ...CONFIG, symmetric: [] })),
      "MALFORMED",
    );
    expectCode(
      thrown(() => encodeKeyConfig({ ...CONFIG, kemId: 0x21 })),
      "UNSUPPORTED_SUITE",
    );
  });

  it("selectKeyConfig takes the first configuration offering AES-128-GCM, else UNSUPPORTED_SUITE", () => {
    const chacha = { ...CONFIG, keyId: 1, symmetric: [{ kdfId: 1, aeadId: 3 }] };
    expect(selectKeyConfig([chacha, CONFIG])).toBe(CONFIG);
    expectCode(
      thrown(() => selectKeyConfig([chacha])),
      "UNSUPPORTED_SUITE",
    );
  });

  it("any bytes at all: a list of configurations or an OhttpError, nothing else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        const err = thrown(() => parseKeyConfigs(bytes));
        if (err !== undefined) expect(err).toBeInstanceOf(OhttpError);
      }),
      { numRuns: 500 },
    );
  });
});
