/**
 * Binary HTTP (RFC 9292) messages and the padding of issue 19 item 4: a store and a retrieval, and an
 * empty answer and a full one, come out the same length; hostile bytes give MALFORMED or TOO_LARGE and
 * nothing else. The RFC's own examples are in test/vectors/rfc9458.test.ts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeVarint, Reader } from "../../src/ohttp/bytes.js";
import {
  type BhttpRequest,
  decodeRequest,
  decodeResponse,
  encapsulateRequest,
  encodeRequest,
  encodeResponse,
  generateGatewayKeyEntry,
  MAX_BHTTP_REQUEST_LENGTH,
  OhttpError,
  type OhttpErrorCode,
  paddedLength,
  parseGatewayKeys,
  REQUEST_PAD_MIN,
  RESPONSE_PAD_MIN,
  requestFromFetch,
  requestToFetch,
  responseFromFetch,
  responseToFetch,
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

const hex = (h: string): Uint8Array => Uint8Array.from(h.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const TOKEN = `PrivateToken token="${"A".repeat(500)}"`;

/** A store: POST of one sealed PASSporT (1,448 bytes of base64url) with a storage token. */
const STORE: BhttpRequest = {
  method: "POST",
  scheme: "https",
  authority: "cps.example",
  path: "/passports/12025550100",
  headers: [
    ["content-type", "application/passport"],
    ["authorization", TOKEN],
  ],
  body: new TextEncoder().encode("x".repeat(1448)),
};
/** A retrieval: GET with a token and nothing else. */
const RETRIEVAL: BhttpRequest = {
  method: "GET",
  scheme: "https",
  authority: "cps.example",
  path: "/passports/12025550100",
  headers: [["authorization", TOKEN]],
  body: new Uint8Array(0),
};

describe("padding (issue 19 item 4, RFC 9292 §3.8)", () => {
  it("paddedLength: max(minimum, next power of two)", () => {
    expect(paddedLength(0, 8192)).toBe(8192);
    expect(paddedLength(8192, 8192)).toBe(8192);
    expect(paddedLength(8193, 8192)).toBe(16384);
    expect(paddedLength(40_000, 8192)).toBe(65536);
    expect(paddedLength(1, 16384)).toBe(16384);
  });

  it("a store and a retrieval are the same length, in Binary HTTP and encapsulated", async () => {
    const store = encodeRequest(STORE);
    const retrieval = encodeRequest(RETRIEVAL);
    expect(encodeRequest(STORE, { padTo: 0 }).length).not.toBe(encodeRequest(RETRIEVAL, { padTo: 0 }).length);
    expect(store.length).toBe(REQUEST_PAD_MIN);
    expect(retrieval.length).toBe(REQUEST_PAD_MIN);
    const [key] = await parseGatewayKeys(JSON.stringify([generateGatewayKeyEntry(1)]));
    const a = await encapsulateRequest(key!.config, store);
    const b = await encapsulateRequest(key!.config, retrieval);
    expect(a.encapsulatedRequest.length).toBe(b.encapsulatedRequest.length);
    // and the padding comes off again
    expect(decodeRequest(store)).toEqual({ ...STORE, trailers: [] });
    expect(decodeRequest(retrieval)).toEqual({ ...RETRIEVAL, trailers: [] });
  });

  it("an empty answer and a full one are the same length", () => {
    const empty = encodeResponse({ status: 204, headers: [], body: new Uint8Array(0) });
    const full = encodeResponse({
      status: 200,
      headers: [["content-type", "application/json"]],
      body: new Uint8Array(10_000).fill(0x41),
    });
    expect(empty.length).toBe(RESPONSE_PAD_MIN);
    expect(full.length).toBe(RESPONSE_PAD_MIN);
    expect(decodeResponse(full).body).toHaveLength(10_000);
  });

  it("padTo below the message length is refused; padTo 0 leaves it bare", () => {
    expectCode(
      thrown(() => encodeRequest(STORE, { padTo: 100 })),
      "TOO_LARGE",
    );
    const bare = encodeRequest(RETRIEVAL, { padTo: 0 });
    expect(bare.length).toBeLessThan(1000);
  });

  it("MALFORMED: padding that is not all zero (§3.8), in a request and a response", () => {
    const request = encodeRequest(RETRIEVAL);
    request[request.length - 1] = 1;
    expectCode(
      thrown(() => decodeRequest(request)),
      "MALFORMED",
    );
    const response = encodeResponse({ status: 200, headers: [], body: new Uint8Array(1) });
    response[response.length - 1] = 1;
    expectCode(
      thrown(() => decodeResponse(response)),
      "MALFORMED",
    );
  });
});

describe("variable-length integers (RFC 9000 §16, used by RFC 9292 §3)", () => {
  it("RFC 9000 Appendix A.1 examples decode, and encode back to the shortest form", () => {
    for (const [h, value, shortest] of [
      ["9d7f3e7d", 494878333, "9d7f3e7d"],
      ["7bbd", 15293, "7bbd"],
      ["25", 37, "25"],
      ["4025", 37, "25"],
    ] as const) {
      expect(new Reader(hex(h), "test").varint()).toBe(value);
      expect(Array.from(encodeVarint(value), (b) => b.toString(16).padStart(2, "0")).join("")).toBe(shortest);
    }
  });

  it("round-trips every length class, up to 2^53 - 1", () => {
    for (const v of [0, 63, 64, 16383, 16384, 2 ** 30 - 1, 2 ** 30, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
      const bytes = encodeVarint(v);
      expect(bytes.length).toBe(v < 64 ? 1 : v < 16384 ? 2 : v < 2 ** 30 ? 4 : 8);
      expect(new Reader(bytes, "test").varint()).toBe(v);
    }
  });

  it("a 20,000-byte body (4-byte length) survives encode and decode", () => {
    const body = new Uint8Array(20_000).map((_, i) => i & 0xff);
    expect(decodeResponse(encodeResponse({ status: 200, headers: [], body })).body).toEqual(body);
  });
});

describe("Binary HTTP decoding of hostile input", () => {
  it("TOO_LARGE: over the total limit, checked first", () => {
    expectCode(
      thrown(() => decodeRequest(new Uint8Array(MAX_BHTTP_REQUEST_LENGTH + 1))),
      "TOO_LARGE",
    );
    expectCode(
      thrown(() => decodeResponse(new Uint8Array(100), { maxLength: 99 })),
      "TOO_LARGE",
    );
  });

  it("MALFORMED: wrong framing indicators (indeterminate length, or a response where a request belongs)", () => {
    expectCode(
      thrown(() => decodeRequest(Uint8Array.of(2))),
      "MALFORMED",
    );
    expectCode(
      thrown(() => decodeRequest(Uint8Array.of(1, 0x40, 0xc8))),
      "MALFORMED",
    );
    expectCode(
      thrown(() => decodeResponse(hex("00034745540568747470730b6578616d706c652e636f6d012f"))),
      "MALFORMED",
    );
    expectCode(
      thrown(() => decodeResponse(Uint8Array.of(3))),
      "MALFORMED",
    );
  });

  it("MALFORMED: every truncation inside a section", () => {
    const bare = encodeRequest({ ...STORE, trailers: [["x-t", "1"]] }, { padTo: 0 });
    // Cut points at section boundaries are valid (§3.8); everything else is not.
    const valid = new Set<number>();
    for (let n = 1; n <= bare.length; n++) {
      const err = thrown(() => decodeRequest(bare.subarray(0, n)));
      if (err === undefined) valid.add(n);
      else expect(err).toBeInstanceOf(OhttpError);
    }
    expect([...valid].length).toBeLessThanOrEqual(4);
    expect(valid.has(bare.length)).toBe(true);
  });

  it("MALFORMED: a length varint larger than what is left (also an 8-byte varint near 2^62)", () => {
    expectCode(
      thrown(() => decodeRequest(Uint8Array.of(0, 0x7f, 0xff, 0x47))),
      "MALFORMED",
    );
    expectCode(
      thrown(() => decodeRequest(Uint8Array.of(0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))),
      "MALFORMED",
    );
    expectCode(
      thrown(() => decodeRequest(Uint8Array.of(0, 0xc0, 0, 0, 0, 0, 0, 0x10, 0))),
      "MALFORMED",
    );
  });

  it("TOO_LARGE: more than 256 fields in a section; a field longer than 8 KiB", () => {
    const many = encodeRequest(
      { ...RETRIEVAL, headers: Array.from({ length: 257 }, (_, i) => [`x-${i}`, "v"] as [string, string]) },
      { padTo: 0 },
    );
    expectCode(
      thrown(() => decodeRequest(many)),
      "TOO_LARGE",
    );
    const long = encodeRequest({ ...RETRIEVAL, headers: [["x", "v".repeat(8193)]] }, { padTo: 0 });
    expectCode(
      thrown(() => decodeRequest(long)),
      "TOO_LARGE",
    );
  });

  it("MALFORMED: field names that are not tokens, values with CR/LF/NUL, bad control data", () => {
    const withField = (name: string, value: string) => {
      const n = new TextEncoder().encode(name);
      const v = Uint8Array.from(value, (c) => c.charCodeAt(0));
      const section = Uint8Array.of(n.length, ...n, v.length, ...v);
      return Uint8Array.of(
        0,
        3,
        0x47,
        0x45,
        0x54,
        5,
        ...new TextEncoder().encode("https"),
        0,
        1,
        0x2f,
        section.length,
        ...section,
      );
    };
    expect(decodeRequest(withField("X-Ok", "fine")).headers).toEqual([["x-ok", "fine"]]);
    for (const [name, value] of [
      [":path", "/"],
      ["bad name", "v"],
      ["", "v"],
      ["x", "a\r\nInjected: 1"],
      ["x", "a\0b"],
    ]) {
      expectCode(
        thrown(() => decodeRequest(withField(name!, value!))),
        "MALFORMED",
      );
    }
    expectCode(
      thrown(() => encodeRequest({ ...RETRIEVAL, path: "/a b" })),
      "MALFORMED",
    );
    expectCode(
      thrown(() => encodeRequest({ ...RETRIEVAL, method: "G T" })),
      "MALFORMED",
    );
    expectCode(
      thrown(() => encodeRequest({ ...RETRIEVAL, headers: [["x", "\u0100"]] })),
      "MALFORMED",
    );
  });

  it("responses: informational (1xx) responses are skipped; a final status outside 200..599 is MALFORMED", () => {
    // 102 with one field, then 200 with no headers and body "ok"
    const msg = Uint8Array.of(1, 0x40, 102, 4, 1, 0x61, 1, 0x62, 0x40, 200, 0, 2, 0x6f, 0x6b);
    expect(decodeResponse(msg)).toEqual({
      status: 200,
      headers: [],
      body: Uint8Array.of(0x6f, 0x6b),
      trailers: [],
    });
    expectCode(
      thrown(() => decodeResponse(Uint8Array.of(1, 0x40, 99))),
      "MALFORMED",
    );
    expectCode(
      thrown(() => decodeResponse(Uint8Array.of(1, 0x42, 0x58))),
      "MALFORMED",
    ); // 600
    const loop = Uint8Array.of(1, ...Array.from({ length: 17 }, () => [0x40, 100, 0]).flat(), 0x40, 200);
    expectCode(
      thrown(() => decodeResponse(loop)),
      "TOO_LARGE",
    );
  });

  it("any bytes at all: a message or an OhttpError, nothing else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const decode of [decodeRequest, decodeResponse]) {
          const err = thrown(() => decode(bytes));
          if (err !== undefined) expect(err).toBeInstanceOf(OhttpError);
        }
      }),
      { numRuns: 1000 },
    );
    // Mostly-valid prefixes reach deeper than random bytes do.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (tail) => {
        const bytes = Uint8Array.of(0, 3, 0x47, 0x45, 0x54, 5, 0x68, 0x74, 0x74, 0x70, 0x73, ...tail);
        const err = thrown(() => decodeRequest(bytes));
        if (err !== undefined) expect(err).toBeInstanceOf(OhttpError);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("fetch bridges", () => {
  it("a fetch Request round-trips through Binary HTTP", async () => {
    const request = new Request("https://cps.example/passports/12025550100?x=1", {
      method: "POST",
      headers: { "Content-Type": "application/passport", Authorization: TOKEN },
      body: "sealed",
    });
    const message = decodeRequest(encodeRequest(await requestFromFetch(request)));
    expect(message).toMatchObject({ method: "POST", scheme: "https", authority: "cps.example" });
    expect(message.path).toBe("/passports/12025550100?x=1");
    const again = requestToFetch(message, "https://cps.example/passports/12025550100");
    expect(again.method).toBe("POST");
    expect(again.headers.get("authorization")).toBe(TOKEN);
    expect(await again.text()).toBe("sealed");
  });

  it("requestToFetch: a GET with a body is MALFORMED", () => {
    expectCode(
      thrown(() => requestToFetch({ ...RETRIEVAL, body: Uint8Array.of(1) }, "https://cps.example/")),
      "MALFORMED",
    );
  });

  it("a fetch Response round-trips, null-body statuses included", async () => {
    const response = new Response("[]", { status: 200, headers: { "Content-Type": "application/json" } });
    const back = responseToFetch(decodeResponse(encodeResponse(await responseFromFetch(response))));
    expect(back.status).toBe(200);
    expect(back.headers.get("content-type")).toBe("application/json");
    expect(await back.text()).toBe("[]");
    const empty = responseToFetch(
      decodeResponse(encodeResponse(await responseFromFetch(new Response(null, { status: 204 })))),
    );
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
  });
});
