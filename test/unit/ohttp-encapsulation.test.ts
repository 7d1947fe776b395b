/**
 * RFC 9458 §4 encapsulation under attack: wrong key ids, suites the key does not offer, truncated and
 * tampered requests and responses each raise their own OhttpError code, and nothing else ever escapes
 * (the gateway turns these into its §5.2 / §5.3 answers). The RFC's own vectors are in
 * test/vectors/rfc9458.test.ts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decapsulateRequest,
  encapsulateRequest,
  type GatewayKey,
  generateGatewayKeyEntry,
  type KeyConfig,
  liveKeys,
  MAX_ENCAPSULATED_REQUEST_LENGTH,
  MAX_ENCAPSULATED_RESPONSE_LENGTH,
  OhttpError,
  type OhttpErrorCode,
  parseGatewayKeys,
} from "../../src/ohttp/index.js";

const utf8 = new TextEncoder();
const REQUEST = utf8.encode("an inner request");
const RESPONSE = utf8.encode("an inner response");

async function gatewayKeys(...ids: number[]): Promise<GatewayKey[]> {
  return parseGatewayKeys(JSON.stringify(ids.map((id) => generateGatewayKeyEntry(id))));
}

async function rejects(promise: Promise<unknown>, code: OhttpErrorCode): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OhttpError);
  expect((err as OhttpError).code).toBe(code);
}

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const out = bytes.slice();
  out[index]! ^= 0x01;
  return out;
}

describe("OHTTP encapsulation round trip", () => {
  it("a request sealed to a gateway key opens there, and the response opens at the client", async () => {
    const keys = await gatewayKeys(3, 9);
    const { encapsulatedRequest, context } = await encapsulateRequest(keys[1]!.config, REQUEST);
    // header (7) + enc (32) + request + tag (16)
    expect(encapsulatedRequest.length).toBe(7 + 32 + REQUEST.length + 16);
    const opened = await decapsulateRequest(keys, encapsulatedRequest);
    expect(opened.request).toEqual(REQUEST);
    expect(opened.context.keyId).toBe(9);
    const response = await opened.context.encapsulateResponse(RESPONSE);
    // response_nonce (16) + response + tag (16)
    expect(response.length).toBe(16 + RESPONSE.length + 16);
    expect(await context.decapsulateResponse(response)).toEqual(RESPONSE);
  });

  it("two encapsulations of one request share nothing but the header (fresh HPKE context each)", async () => {
    const [key] = await gatewayKeys(1);
    const a = (await encapsulateRequest(key!.config, REQUEST)).encapsulatedRequest;
    const b = (await encapsulateRequest(key!.config, REQUEST)).encapsulatedRequest;
    expect(a.subarray(0, 7)).toEqual(b.subarray(0, 7));
    expect(a.subarray(7)).not.toEqual(b.subarray(7));
  });

  it("a response is bound to its request: another request's context does not open it", async () => {
    const keys = await gatewayKeys(1);
    const first = await encapsulateRequest(keys[0]!.config, REQUEST);
    const second = await encapsulateRequest(keys[0]!.config, REQUEST);
    const opened = await decapsulateRequest(keys, first.encapsulatedRequest);
    const response = await opened.context.encapsulateResponse(RESPONSE);
    await rejects(second.context.decapsulateResponse(response), "DECRYPT_FAILED");
  });
});

describe("OHTTP gateway refusals (RFC 9458 §5.2, §5.3)", () => {
  it("KEY_ID_UNKNOWN: a key id the gateway does not hold, flagged as a key-configuration problem", async () => {
    const [key] = await gatewayKeys(1);
    const other: KeyConfig = { ...key!.config, keyId: 2 };
    const { encapsulatedRequest } = await encapsulateRequest(other, REQUEST);
    const err = await decapsulateRequest([key!], encapsulatedRequest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OhttpError);
    expect((err as OhttpError).code).toBe("KEY_ID_UNKNOWN");
    expect((err as OhttpError).keyConfigProblem).toBe(true);
    expect((err as OhttpError).status).toBe(400);
  });

  it("KEY_ID_UNKNOWN: a key past its notAfter is no longer live; one before notBefore not yet", async () => {
    const now = Date.now();
    const keys = await parseGatewayKeys(
      JSON.stringify([
        generateGatewayKeyEntry(1, { notAfter: now }),
        generateGatewayKeyEntry(2, { notBefore: now + 1 }),
      ]),
    );
    for (const key of keys) {
      const { encapsulatedRequest } = await encapsulateRequest(key.config, REQUEST);
      await rejects(decapsulateRequest(liveKeys(keys, now), encapsulatedRequest), "KEY_ID_UNKNOWN");
    }
  });

  it("a key sealed to the right id but another public key does not open (DECRYPT_FAILED)", async () => {
    const [real] = await gatewayKeys(1);
    const [impostor] = await gatewayKeys(1);
    const { encapsulatedRequest } = await encapsulateRequest(impostor!.config, REQUEST);
    await rejects(decapsulateRequest([real!], encapsulatedRequest), "DECRYPT_FAILED");
  });

  it("UNSUPPORTED_SUITE: a KEM, KDF or AEAD other than the key's X25519 / HKDF-SHA256 / AES-128-GCM", async () => {
    const keys = await gatewayKeys(1);
    const { encapsulatedRequest } = await encapsulateRequest(keys[0]!.config, REQUEST);
    for (const [index, value] of [
      [2, 0x21], // kem 0x0021: DHKEM(X448)
      [4, 0x03], // kdf 0x0003: HKDF-SHA512
      [6, 0x03], // aead 0x0003: ChaCha20-Poly1305 (not offered by our keys)
      [6, 0x02], // aead 0x0002: AES-256-GCM
    ] as const) {
      const changed = encapsulatedRequest.slice();
      changed[index] = value;
      await rejects(decapsulateRequest(keys, changed), "UNSUPPORTED_SUITE");
    }
  });

  it("UNSUPPORTED_SUITE: ChaCha20-Poly1305 listed in a key's configuration is still not implemented", async () => {
    const [key] = await gatewayKeys(1);
    const listed: GatewayKey = {
      ...key!,
      config: { ...key!.config, symmetric: [...key!.config.symmetric, { kdfId: 1, aeadId: 3 }] },
    };
    const { encapsulatedRequest } = await encapsulateRequest(listed.config, REQUEST);
    encapsulatedRequest[6] = 0x03;
    await rejects(decapsulateRequest([listed], encapsulatedRequest), "UNSUPPORTED_SUITE");
  });

  it("MALFORMED: every truncation shorter than header + enc + tag", async () => {
    const keys = await gatewayKeys(1);
    const { encapsulatedRequest } = await encapsulateRequest(keys[0]!.config, REQUEST);
    for (let n = 0; n < 7 + 32 + 16; n++) {
      // Up to the key id the message names no key yet; from there the id is known and the rest is short.
      await rejects(decapsulateRequest(keys, encapsulatedRequest.subarray(0, n)), "MALFORMED");
    }
  });

  it("DECRYPT_FAILED: truncations that cut the ciphertext, and every flipped bit after the header", async () => {
    const keys = await gatewayKeys(1);
    const { encapsulatedRequest } = await encapsulateRequest(keys[0]!.config, REQUEST);
    for (let n = 7 + 32 + 16; n < encapsulatedRequest.length; n++) {
      await rejects(decapsulateRequest(keys, encapsulatedRequest.subarray(0, n)), "DECRYPT_FAILED");
    }
    for (let i = 7; i < encapsulatedRequest.length; i++) {
      await rejects(decapsulateRequest(keys, flip(encapsulatedRequest, i)), "DECRYPT_FAILED");
    }
  });

  it("DECRYPT_FAILED: an all-zero (low-order) encapsulated key", async () => {
    const keys = await gatewayKeys(1);
    const { encapsulatedRequest } = await encapsulateRequest(keys[0]!.config, REQUEST);
    const zeroEnc = encapsulatedRequest.slice();
    zeroEnc.fill(0, 7, 7 + 32);
    await rejects(decapsulateRequest(keys, zeroEnc), "DECRYPT_FAILED");
  });

  it("TOO_LARGE: a request over the limit is refused before any crypto", async () => {
    const keys = await gatewayKeys(1);
    const big = new Uint8Array(MAX_ENCAPSULATED_REQUEST_LENGTH + 1);
    big[0] = 1;
    await rejects(decapsulateRequest(keys, big), "TOO_LARGE");
    await rejects(
      encapsulateRequest(keys[0]!.config, new Uint8Array(MAX_ENCAPSULATED_REQUEST_LENGTH)),
      "TOO_LARGE",
    );
  });

  it("any bytes at all: only an OhttpError ever comes out", async () => {
    const keys = await gatewayKeys(0, 1);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        const err = await decapsulateRequest(keys, bytes).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(OhttpError);
      }),
      { numRuns: 200 },
    );
  });
});

describe("OHTTP client refusals of a response", () => {
  async function exchange() {
    const keys = await gatewayKeys(1);
    const { encapsulatedRequest, context } = await encapsulateRequest(keys[0]!.config, REQUEST);
    const opened = await decapsulateRequest(keys, encapsulatedRequest);
    return { context, response: await opened.context.encapsulateResponse(RESPONSE) };
  }

  it("DECRYPT_FAILED: every flipped bit of nonce or ciphertext", async () => {
    const { context, response } = await exchange();
    for (let i = 0; i < response.length; i++) {
      await rejects(context.decapsulateResponse(flip(response, i)), "DECRYPT_FAILED");
    }
  });

  it("MALFORMED: shorter than nonce + tag; DECRYPT_FAILED: truncated ciphertext", async () => {
    const { context, response } = await exchange();
    for (let n = 0; n < 32; n++)
      await rejects(context.decapsulateResponse(response.subarray(0, n)), "MALFORMED");
    for (let n = 32; n < response.length; n++) {
      await rejects(context.decapsulateResponse(response.subarray(0, n)), "DECRYPT_FAILED");
    }
  });

  it("TOO_LARGE: a response over the limit", async () => {
    const { context } = await exchange();
    await rejects(
      context.decapsulateResponse(new Uint8Array(MAX_ENCAPSULATED_RESPONSE_LENGTH + 1)),
      "TOO_LARGE",
    );
  });

  it("UNSUPPORTED_SUITE at the client: a configuration without AES-128-GCM", async () => {
    const [key] = await gatewayKeys(1);
    const chachaOnly: KeyConfig = { ...key!.config, symmetric: [{ kdfId: 1, aeadId: 3 }] };
    await rejects(encapsulateRequest(chachaOnly, REQUEST), "UNSUPPORTED_SUITE");
  });
});
