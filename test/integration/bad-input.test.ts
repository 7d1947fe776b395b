/**
 * docs/design.md invariant 7: bad input always gets a 4xx RFC 9457 problem response, never a 5xx, never a
 * stack trace, and never changes stored state. Each table row is one bad request against the real app
 * in workerd; after each, the rows of the index block of a number holding one real blob (the number's
 * rows and any of its neighbours') are compared with a snapshot.
 *
 * Bad telephone numbers are spelled as near-misses of that number (e.g. `++1555…`, `1555..0100…`),
 * so a parser that leniently accepted them would reach its queue and the state check would fail.
 */
import { runInDurableObject } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CpsErrorCode } from "../../src/errors.js";
import { PROBLEM_TYPE_BASE } from "../../src/errors.js";
import { MAX_STORE_BODY_BYTES } from "../../src/routes/passports.js";
import { encodeBase64url } from "../../src/stir/base64url.js";
import { decodeEnvelope, ENVELOPE_LENGTH } from "../../src/stir/envelope.js";
import { sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, blockFor, fetchApp, liveCountOf } from "../helpers/worker.js";

/** The number that holds one real blob for the whole file. */
const REF = "15550100001";
/** A well-formed id that no number holds (random ids are 128 bits; all-'a' never comes up). */
const UNKNOWN_ID = "a".repeat(32);

type Row = {
  id: string;
  tn: string;
  blob: string;
  expires_at: number;
};

/**
 * Every row of the number's index block (expired ones too, and those of every number of the block:
 * no other test file uses REF's block), blob bytes as hex.
 */
async function snapshot(tn: string): Promise<Row[]> {
  return runInDurableObject(blockFor(tn), (_obj, state) =>
    state.storage.sql
      .exec<Row>("SELECT id, tn, hex(blob) AS blob, expires_at FROM blobs ORDER BY id")
      .toArray()
      .map((r) => ({ ...r })),
  );
}

/** A bad request: built lazily, because bodies need the sealed text made in beforeAll. */
interface BadCase {
  name: string;
  status: number;
  code: CpsErrorCode;
  allow?: string;
  request: () => Request;
}

let validText = ""; // base64url of a real envelope sealed for REF
let anotherValid: () => Promise<string>; // a fresh seal for REF (the same bytes again are a retry)
let realId = ""; // the id REF's real blob was stored under
let initial: Row[] = []; // REF's rows right after beforeAll

beforeAll(async () => {
  const sealed = await sealedFor(REF);
  validText = sealed.text;
  anotherValid = sealed.another;
  const res = await fetchApp(storeRequest(BASE, REF, validText));
  expect(res.status).toBe(201);
  realId = (await res.json<{ id: string }>()).id;
  expect(await liveCountOf(REF)).toBe(1);
  initial = await snapshot(REF);
  expect(initial.map((r) => [r.id, r.tn])).toEqual([[realId, REF]]);
});

// A failing row must not cascade into the next: put REF back to its one real blob.
afterEach(async () => {
  await runInDurableObject(blockFor(REF), (_obj, state) => {
    state.storage.sql.exec("DELETE FROM blobs WHERE id <> ?", realId);
  });
});

const req = (method: string, path: string, init: RequestInit = {}) =>
  new Request(`${BASE}${path}`, { method, ...init });
/** A POST with the given body and content type (null: no Content-Type header at all). */
const post = (path: string, body: BodyInit | null, contentType: string | null = "application/passport") =>
  req("POST", path, {
    body,
    headers: contentType === null ? {} : { "Content-Type": contentType },
  });
const postRef =
  (body: () => BodyInit | null, contentType: string | null = "application/passport") =>
  () =>
    post(`/cps/${REF}/ppts`, body(), contentType);

/** Arabic-Indic and fullwidth digits: Unicode `Nd`, not E.164 digits. */
const arabicIndic = (digits: string) =>
  digits.replace(/[0-9]/g, (d) => String.fromCharCode(0x0660 + Number(d)));
const fullwidth = (digits: string) =>
  digits.replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d)));

/** Path segments that must be refused as a telephone number (RFC 8816 §9, docs/design.md wire formats). */
const BAD_TNS: [string, string][] = [
  ["a letter", `${REF.slice(0, -1)}a`],
  ["letters only", "alice"],
  ["a letter suffix", `${REF}x`],
  ["2 digits", "15"],
  ["16 digits", `${REF}12345`],
  ["'++' prefix", `++${REF}`],
  ["'+' inside", `1555+0100001`],
  ["'..' between groups", "1555..0100001"],
  ["leading '.'", `.${REF}`],
  ["trailing '-'", `${REF}-`],
  ["leading space (%20)", `%20${REF}`],
  ["Arabic-Indic digits", encodeURIComponent(arabicIndic(REF))],
  ["fullwidth digits (raw)", fullwidth(REF)],
  ["malformed percent-escape %ZZ", `${REF}%ZZ`],
  ["lone '%'", `${REF}%`],
  ["encoded NUL", `${REF}%00`],
  ["encoded newline", `1555%0A0100001`],
  ["encoded slash", `1555%2F0100001`],
  ["encoded '++'", `%2B%2B${REF}`],
  ["zero-width space", `%E2%80%8B${REF}`],
  ["encoded UTF-8 junk", "%C3%28%A0%A1"],
  ["very long digits", "1".repeat(5000)],
  ["very long dotted", `1${".1".repeat(40)}`],
];

const tnRows: BadCase[] = BAD_TNS.flatMap(([label, tn]): BadCase[] => [
  {
    name: `GET list, TN ${label}`,
    status: 400,
    code: "INVALID_TN",
    request: () => req("GET", `/cps/${tn}/ppts`),
  },
  {
    name: `POST a valid blob, TN ${label}`,
    status: 400,
    code: "INVALID_TN",
    request: () => post(`/cps/${tn}/ppts`, validText),
  },
  {
    name: `GET one, TN ${label}`,
    status: 400,
    code: "INVALID_TN",
    request: () => req("GET", `/cps/${tn}/ppts/${realId}`),
  },
]);

const mediaTypeRows: BadCase[] = [
  ["text/plain", "text/plain"],
  ["text/plain with charset", "text/plain;charset=UTF-8"],
  ["application/json", "application/json"],
  ["application/octet-stream", "application/octet-stream"],
  ["application/passport-x", "application/passport-x"],
  ["application/passportx", "application/passportx"],
  ["application/*", "application/*"],
  ["two types in one header", "application/passport, text/plain"],
  ["empty", ""],
].map(
  ([label, type]): BadCase => ({
    name: `Content-Type ${label}`,
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
    request: postRef(() => validText, type),
  }),
);
mediaTypeRows.push({
  name: "no Content-Type at all (byte body)",
  status: 415,
  code: "UNSUPPORTED_MEDIA_TYPE",
  request: () => {
    const r = postRef(() => new TextEncoder().encode(validText), null)();
    expect(r.headers.has("Content-Type")).toBe(false);
    return r;
  },
});

/** A body streamed in `chunks` pieces of `size` bytes, with no Content-Length. */
function stream(chunks: number, size: number, byte = 0x41): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent++ >= chunks) controller.close();
      else controller.enqueue(new Uint8Array(size).fill(byte));
    },
  });
}

const sizeRows: BadCase[] = [
  {
    name: "Content-Length one over 8 KiB",
    status: 413,
    code: "BODY_TOO_LARGE",
    request: postRef(() => "A".repeat(MAX_STORE_BODY_BYTES + 1)),
  },
  {
    name: "Content-Length 1 MiB of valid text repeated",
    status: 413,
    code: "BODY_TOO_LARGE",
    request: postRef(() => validText.repeat(800)),
  },
  {
    name: "chunked stream, no length, 9 KiB",
    status: 413,
    code: "BODY_TOO_LARGE",
    request: postRef(() => stream(9, 1024)),
  },
  {
    name: "chunked stream, no length, endless 64 KiB chunks (stops early)",
    status: 413,
    code: "BODY_TOO_LARGE",
    request: postRef(() => stream(10_000, 64 * 1024)),
  },
  {
    name: "chunked stream one byte over 8 KiB",
    status: 413,
    code: "BODY_TOO_LARGE",
    request: postRef(() => stream(MAX_STORE_BODY_BYTES + 1, 1)),
  },
];

/** Flips a canonical last character so its unused low bits are non-zero (RFC 4648 §3.5). */
function nonCanonical(text: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const last = alphabet.indexOf(text.at(-1)!);
  return text.slice(0, -1) + alphabet[last | 1];
}
const bytesOf = (n: number) => encodeBase64url(crypto.getRandomValues(new Uint8Array(n)));
const withNonAscii = () => {
  const bytes = new TextEncoder().encode(validText);
  bytes[100] = 0xff;
  bytes[101] = 0xc3;
  return bytes;
};
const standardBase64 = () => btoa(String.fromCharCode(...decodeEnvelope(validText)));

const encodingRows: BadCase[] = (
  [
    ["'=' padding appended", () => `${validText}==`],
    ["'=' in the middle", () => `${validText.slice(0, 700)}=${validText.slice(701)}`],
    ["'+' instead of '-'", () => `+${validText.slice(1)}`],
    ["'/' instead of '_'", () => `${validText.slice(0, 10)}/${validText.slice(11)}`],
    ["standard base64 with padding", standardBase64],
    ["non-ASCII bytes", withNonAscii],
    ["a NUL character", () => `${validText.slice(0, 50)}\u0000${validText.slice(50)}`],
    ["length 1 mod 4", () => `${validText}AAA`],
    ["non-canonical last character", () => nonCanonical(validText)],
    ["JSON wrapping", () => JSON.stringify({ blob: validText })],
    ["a dot", () => `${validText.slice(0, 5)}.${validText.slice(6)}`],
  ] as [string, () => BodyInit][]
).map(
  ([label, body]): BadCase => ({
    name: `not base64url: ${label}`,
    status: 400,
    code: "BLOB_ENCODING",
    request: postRef(body),
  }),
);

const blobSizeRows: BadCase[] = (
  [
    ["one byte short", () => bytesOf(ENVELOPE_LENGTH - 1)],
    ["one byte long", () => bytesOf(ENVELOPE_LENGTH + 1)],
    ["a valid blob cut by one byte", () => encodeBase64url(decodeEnvelope(validText).subarray(1))],
    // Zero decoded bytes: an empty (or whitespace-only) body is valid base64url of nothing.
    ["0 bytes (empty body)", () => ""],
    ["0 bytes (whitespace only)", () => " \r\n\t"],
    ["1 byte", () => bytesOf(1)],
    ["two envelopes", () => bytesOf(2 * ENVELOPE_LENGTH)],
    ["at the 8 KiB body limit", () => "A".repeat(MAX_STORE_BODY_BYTES)],
  ] as [string, () => BodyInit][]
).map(
  ([label, body]): BadCase => ({
    name: `decoded length: ${label}`,
    status: 400,
    code: "BLOB_SIZE",
    request: postRef(body),
  }),
);

const idRows: BadCase[] = (
  [
    ["uppercase hex", () => "A".repeat(32)],
    ["the real id in uppercase", () => realId.toUpperCase()],
    ["31 hex", () => "a".repeat(31)],
    ["33 hex", () => "a".repeat(33)],
    ["the real id plus one character", () => `${realId}0`],
    ["non-hex", () => "g".repeat(32)],
    ["dashes (UUID form)", () => "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"],
    ["percent-encoded", () => encodeURIComponent(`${"a".repeat(31)}\u00e9`)],
    ["SQL-ish", () => "'%20OR%201=1--"],
    ["very long", () => "a".repeat(4096)],
  ] as [string, () => string][]
).flatMap(([label, id]): BadCase[] => [
  {
    name: `id ${label}`,
    status: 400,
    code: "INVALID_ID",
    request: () => req("GET", `/cps/${REF}/ppts/${id()}`),
  },
  {
    name: `id ${label}, trailing slash`,
    status: 400,
    code: "INVALID_ID",
    request: () => req("GET", `/cps/${REF}/ppts/${id()}/`),
  },
]);

const notFoundRows: BadCase[] = [
  {
    name: "unknown well-formed id",
    status: 404,
    code: "NOT_FOUND",
    request: () => req("GET", `/cps/${REF}/ppts/${UNKNOWN_ID}`),
  },
  {
    name: "unknown well-formed id, trailing slash",
    status: 404,
    code: "NOT_FOUND",
    request: () => req("GET", `/cps/${REF}/ppts/${UNKNOWN_ID}/`),
  },
  {
    name: "the real id under another number (queues are per number)",
    status: 404,
    code: "NOT_FOUND",
    request: () => req("GET", `/cps/15550100002/ppts/${realId}`),
  },
  ...(
    [
      ["GET", "/"],
      ["GET", "/cps"],
      ["GET", "/cps/"],
      ["GET", `/cps/${REF}`],
      ["POST", `/cps/${REF}`],
      ["GET", `/cps/${REF}/`],
      ["GET", "/cps//ppts"],
      ["POST", "/cps//ppts"],
      ["GET", `/cps/${REF}/pptsx`],
      ["POST", `/cps/${REF}/ppt`],
      ["GET", `/CPS/${REF}/ppts`],
      ["GET", `/cps/${REF}/ppts/${UNKNOWN_ID}/extra`],
      ["DELETE", `/cps/${REF}/ppts/${UNKNOWN_ID}/extra/more`],
      ["GET", "/nope"],
      ["POST", "/tokens/nope"],
      ["GET", "/health/x"],
      ["GET", "/.env"],
      ["GET", "/../../etc/passwd"],
    ] as [string, string][]
  ).map(
    ([method, path]): BadCase => ({
      name: `unknown route ${method} ${path}`,
      status: 404,
      code: "NOT_FOUND",
      request: () => req(method, path, method === "GET" ? {} : { body: validText }),
    }),
  ),
];

const methodRows: BadCase[] = [
  ...["PUT", "DELETE", "PATCH", "OPTIONS"].map(
    (method): BadCase => ({
      name: `${method} /cps/{tn}/ppts`,
      status: 405,
      code: "METHOD_NOT_ALLOWED",
      allow: "GET, POST",
      request: () =>
        req(method, `/cps/${REF}/ppts`, {
          body: method === "OPTIONS" ? null : validText,
          headers: { "Content-Type": "application/passport" },
        }),
    }),
  ),
  ...["POST", "PUT", "DELETE", "PATCH"].flatMap((method): BadCase[] =>
    ["", "/"].map((slash) => ({
      name: `${method} /cps/{tn}/ppts/{real id}${slash}`,
      status: 405,
      code: "METHOD_NOT_ALLOWED",
      allow: "GET",
      request: () =>
        req(method, `/cps/${REF}/ppts/${realId}${slash}`, {
          body: validText,
          headers: { "Content-Type": "application/passport" },
        }),
    })),
  ),
];

const STACK_FRAME = /^\s*at \S|\bat \S+ \(|\.[cm]?[jt]s:\d+:\d+/m;

async function expectProblem(res: Response, c: BadCase): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(c.status);
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  if (c.allow !== undefined) expect(res.headers.get("Allow")).toBe(c.allow);
  expect(text).not.toMatch(STACK_FRAME);
  expect(text).not.toContain("Error:");
  expect(text).not.toContain("Error");
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(body).toMatchObject({
    type: PROBLEM_TYPE_BASE + c.code.toLowerCase().replaceAll("_", "-"),
    title: expect.any(String),
    status: c.status,
    code: c.code,
  });
  expect((body.title as string).length).toBeGreaterThan(0);
  // Nothing of the request comes back: no number, no body text.
  expect(text).not.toContain(REF);
  expect(text).not.toContain(validText.slice(0, 32));
}

async function expectRejectedWithoutStateChange(c: BadCase): Promise<void> {
  const before = await snapshot(REF);
  expect(before).toEqual(initial);
  const res = await fetchApp(c.request());
  await expectProblem(res, c);
  expect(await snapshot(REF)).toEqual(before);
  expect(await liveCountOf(REF)).toBe(1);
}

describe("docs/design.md invariant 7: bad input gets a 4xx problem and changes nothing", () => {
  describe("RFC 8816 §9 {tn} path segment: bad telephone numbers -> 400 INVALID_TN", () => {
    it.each(tnRows.map((r) => [r.name, r] as const))("%s", (_name, c) => expectRejectedWithoutStateChange(c));
  });

  describe("RFC 8816 §9 POST media type: not application/passport -> 415 UNSUPPORTED_MEDIA_TYPE", () => {
    it.each(mediaTypeRows.map((r) => [r.name, r] as const))("%s", (_name, c) =>
      expectRejectedWithoutStateChange(c),
    );
  });

  describe("body over 8 KiB -> 413 BODY_TOO_LARGE", () => {
    it.each(sizeRows.map((r) => [r.name, r] as const))("%s", (_name, c) =>
      expectRejectedWithoutStateChange(c),
    );
  });

  describe("RFC 8816 §9 body not base64url -> 400 BLOB_ENCODING", () => {
    it.each(encodingRows.map((r) => [r.name, r] as const))("%s", (_name, c) =>
      expectRejectedWithoutStateChange(c),
    );
  });

  describe("RFC 8816 §6.2 one envelope length: wrong decoded length -> 400 BLOB_SIZE", () => {
    it.each(blobSizeRows.map((r) => [r.name, r] as const))("%s", (_name, c) =>
      expectRejectedWithoutStateChange(c),
    );
  });

  describe("RFC 8816 §9 {id} path segment: malformed ids -> 400 INVALID_ID", () => {
    it.each(idRows.map((r) => [r.name, r] as const))("%s", (_name, c) => expectRejectedWithoutStateChange(c));
  });

  describe("unknown ids and routes -> 404 NOT_FOUND", () => {
    it.each(notFoundRows.map((r) => [r.name, r] as const))("%s", (_name, c) =>
      expectRejectedWithoutStateChange(c),
    );
  });

  describe("wrong methods -> 405 METHOD_NOT_ALLOWED with Allow", () => {
    it.each(methodRows.map((r) => [r.name, r] as const))("%s", (_name, c) =>
      expectRejectedWithoutStateChange(c),
    );
  });

  it("controls: the same requests done right do change state, so the state check has teeth", async () => {
    const before = await snapshot(REF);
    const stored = await fetchApp(post(`/cps/1555.010.0001/ppts`, await anotherValid()));
    expect(stored.status).toBe(201);
    const { id } = await stored.json<{ id: string }>();
    const after = await snapshot(REF);
    expect(after).toHaveLength(before.length + 1);
    expect(after.map((r) => r.id)).toContain(id);
    expect((await fetchApp(req("GET", `/cps/${REF}/ppts/${id}/`))).status).toBe(200);
    // Put REF back to one real blob for any row that runs after this one.
    await runInDurableObject(blockFor(REF), (_obj, state) => {
      state.storage.sql.exec("DELETE FROM blobs WHERE id = ?", id);
    });
    expect(await snapshot(REF)).toEqual(before);
  });
});
