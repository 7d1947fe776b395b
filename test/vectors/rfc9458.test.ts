/**
 * Known-answer tests of src/ohttp/ against RFC 9458 Appendix A (data in rfc9458-appendix-a.json) and the
 * known-length Binary HTTP examples of RFC 9292 §5 (rfc9292-examples.json). The request side runs with
 * the Appendix's ephemeral key and the response side with its response nonce, so every byte is checked.
 */
import { describe, expect, it } from "vitest";
import {
  decapsulateRequest,
  decodeRequest,
  decodeResponse,
  encapsulateRequest,
  encodeKeyConfig,
  encodeKeyConfigs,
  encodeRequest,
  encodeResponse,
  type GatewayKey,
  parseKeyConfig,
  parseKeyConfigs,
  selectKeyConfig,
  x25519FromPrivate,
} from "../../src/ohttp/index.js";
import bhttp from "./rfc9292-examples.json" with { type: "json" };
import a from "./rfc9458-appendix-a.json" with { type: "json" };

const hex = (h: string): Uint8Array => Uint8Array.from(h.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

async function appendixGatewayKey(): Promise<GatewayKey> {
  const { privateKey, publicKey } = await x25519FromPrivate(hex(a.gatewayPrivateKey));
  return { keyId: 1, privateKey, publicKey, config: parseKeyConfig(hex(a.keyConfig)) };
}

describe("RFC 9458 Appendix A: complete example of a request and response", () => {
  it("the key configuration: key id 1, X25519 public key of the gateway's secret, HKDF-SHA256 with AES-128-GCM and ChaCha20-Poly1305", async () => {
    const config = parseKeyConfig(hex(a.keyConfig));
    const { publicKey } = await x25519FromPrivate(hex(a.gatewayPrivateKey));
    expect(config.keyId).toBe(1);
    expect(config.kemId).toBe(0x0020);
    expect(toHex(config.publicKey)).toBe(toHex(publicKey));
    expect(config.symmetric).toEqual([
      { kdfId: 1, aeadId: 1 },
      { kdfId: 1, aeadId: 3 },
    ]);
    expect(toHex(encodeKeyConfig(config))).toBe(a.keyConfig);
    // §3.2 list form: the same bytes behind a two-byte length.
    const list = encodeKeyConfigs([config]);
    expect(toHex(list)).toBe(hex(a.keyConfig).length.toString(16).padStart(4, "0") + a.keyConfig);
    expect(selectKeyConfig(parseKeyConfigs(list))).toEqual(config);
  });

  it("the ephemeral secret key gives the Appendix's ephemeral public key", async () => {
    expect(toHex((await x25519FromPrivate(hex(a.ephemeralPrivateKey))).publicKey)).toBe(a.ephemeralPublicKey);
  });

  it("encapsulating the Appendix's request with its ephemeral key gives the Appendix's encapsulated request", async () => {
    const { encapsulatedRequest } = await encapsulateRequest(
      parseKeyConfig(hex(a.keyConfig)),
      hex(a.request),
      {
        ephemeralPrivateKey: hex(a.ephemeralPrivateKey),
      },
    );
    expect(toHex(encapsulatedRequest)).toBe(a.encapsulatedRequest);
    // The header is the tail of the HPKE info (§4.3): key id, KEM, KDF, AEAD.
    expect(a.info.endsWith(toHex(encapsulatedRequest.subarray(0, 7)))).toBe(true);
  });

  it("the gateway decapsulates the Appendix's encapsulated request to its Binary HTTP request", async () => {
    const { request, context } = await decapsulateRequest(
      [await appendixGatewayKey()],
      hex(a.encapsulatedRequest),
    );
    expect(toHex(request)).toBe(a.request);
    expect(context.keyId).toBe(1);
    // And the request is the minimal GET https://example.com/ of the Appendix.
    expect(decodeRequest(request)).toMatchObject({
      method: "GET",
      scheme: "https",
      authority: "example.com",
      path: "/",
      headers: [],
    });
  });

  it("the gateway's response with the Appendix's nonce is the Appendix's encapsulated response", async () => {
    const { context } = await decapsulateRequest([await appendixGatewayKey()], hex(a.encapsulatedRequest));
    const encapsulated = await context.encapsulateResponse(hex(a.response), {
      responseNonce: hex(a.responseNonce),
    });
    expect(toHex(encapsulated)).toBe(a.encapsulatedResponse);
  });

  it("the client opens the Appendix's encapsulated response to the 200 response", async () => {
    const { context } = await encapsulateRequest(parseKeyConfig(hex(a.keyConfig)), hex(a.request), {
      ephemeralPrivateKey: hex(a.ephemeralPrivateKey),
    });
    const response = await context.decapsulateResponse(hex(a.encapsulatedResponse));
    expect(toHex(response)).toBe(a.response);
    expect(decodeResponse(response)).toMatchObject({ status: 200, headers: [] });
  });
});

describe("RFC 9292 §5: known-length examples", () => {
  const req = bhttp.knownLengthRequest;
  const res = bhttp.knownLengthResponse;

  it("§5.1: the sample request encodes to the known-length bytes (no padding)", () => {
    const bytes = encodeRequest(
      {
        method: req.method,
        scheme: req.scheme,
        authority: req.authority,
        path: req.path,
        headers: req.headers as [string, string][],
        body: new Uint8Array(0),
      },
      { padTo: 0 },
    );
    expect(toHex(bytes)).toBe(req.hex);
  });

  it("§5.1: the known-length bytes decode to the sample request, also when truncated (§3.8) or padded", () => {
    const expected = {
      method: req.method,
      scheme: req.scheme,
      authority: req.authority,
      path: req.path,
      headers: req.headers,
      body: new Uint8Array(0),
      trailers: [],
    };
    const full = hex(req.hex);
    expect(decodeRequest(full)).toEqual(expected);
    expect(decodeRequest(full.subarray(0, full.length - 1))).toEqual(expected);
    expect(decodeRequest(full.subarray(0, full.length - 2))).toEqual(expected);
    const padded = new Uint8Array(full.length + 100);
    padded.set(full);
    expect(decodeRequest(padded)).toEqual(expected);
  });

  it("§5.2: the chunked response example encodes to, and decodes from, the known-length bytes", () => {
    const message = {
      status: res.status,
      headers: res.headers as [string, string][],
      body: latin1(res.body),
      trailers: res.trailers as [string, string][],
    };
    expect(toHex(encodeResponse(message, { padTo: 0 }))).toBe(res.hex);
    expect(decodeResponse(hex(res.hex))).toEqual(message);
  });
});
