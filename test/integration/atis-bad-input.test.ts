/**
 * Bad input on the ATIS out-of-band routes (issue 16 "Bad input"; ATIS-1000096, ATIS-1000105,
 * draft-wendt-stir-vesper-oob; docs/atis-api.md), in workerd with the real AtisStore and ReplayGuard
 * Durable Objects, the real x5u fetcher (the test certificate repository behind vitest.config.ts's
 * outboundService) and CRLs. docs/design.md invariant 7: each row is one bad request, and each must get
 * its 4xx in the ATIS JSON error format with a stable `code`, no stack trace, and change nothing: the
 * AtisStore of the called number holds what it held before (its PASSporTs and every table's row
 * count), and a token's `jti` is not spent by a refusal (the same jti then publishes, fixed). Each
 * row is wrong in one way and names the code that way answers; the "first wins" rows are wrong in two
 * ways and pin the plan's order of checks ("Order of checks on publish").
 *
 * Then controls (the variants the refusals are near-misses of are accepted), and a property: random
 * requests on the ATIS paths never get a 5xx and never change the store.
 */
import { env } from "cloudflare:test";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createPassport } from "../../src/stir/passport.js";
import {
  ATIS_AUDIENCE,
  type AtisTokenInput,
  atisCredential,
  atisPath,
  atisToken,
  badSignature,
  chainX5u,
  compactForm,
  DIGEST_VARIANTS,
  expectAtisError,
  freshTn,
  nowSeconds,
  passportsDigest,
  rawJws,
  retrieveInit,
  STACK,
  shakenPassport,
  signedJws,
  storedFor,
  storeRowCounts,
  TEST_SPC,
  TEST_X5U_ORIGIN,
  tamper,
  x5uOf,
} from "../helpers/atis.js";
import { TEST_CPS_ORIGIN } from "../helpers/origin.js";
import { loadTestPki, type WorkerCredential } from "../helpers/pki.js";
import { BASE, fetchApp } from "../helpers/worker.js";

const pki = loadTestPki(env.TEST_PKI);

/** PASSporT signers: `valid` (its chain served at x5uOf("valid")), and others for the broken cases. */
let signer: WorkerCredential;
let otherSigner: WorkerCredential;
let revokedSigner: WorkerCredential;
beforeAll(async () => {
  signer = await pki.credential("valid");
  otherSigner = await pki.credential("crlValid");
  revokedSigner = await pki.credential("crlRevokedLeaf");
});

/** One row's numbers and publisher (a fresh credential: its own rate-limit bucket and key scope). */
interface Ctx {
  readonly dest: string;
  readonly orig: string;
  readonly cred: WorkerCredential;
}

/** A request to send, and what a "fixed" resend needs: the jti it carried, the path's SPC. */
interface Attempt {
  readonly path: string;
  readonly init: RequestInit;
  readonly jti?: string;
  readonly spc?: string;
}

const send = (a: Attempt) => fetchApp(`${BASE}${a.path}`, a.init);

/** `n` good SHAKEN PASSporTs for the context's call. */
function good(ctx: Ctx, n = 1): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, () => shakenPassport(signer, { orig: ctx.orig, dest: ctx.dest })),
  );
}

const JTI = /^[A-Za-z0-9_-]{16,128}$/;
function jtiOf(claims: Record<string, unknown>): string | undefined {
  return typeof claims.jti === "string" && JTI.test(claims.jti) ? claims.jti : undefined;
}

type TokenOverrides = Partial<AtisTokenInput>;

interface PublishOptions {
  /** Token overrides; `null`: no Authorization header. */
  readonly token?: TokenOverrides | null;
  /** An Authorization header as given (instead of a token). */
  readonly authorization?: string;
  readonly passports?: readonly string[];
  /** The token's digest over these instead of `passports`. */
  readonly digestOf?: readonly string[];
  /** A raw body instead of `{"passports": [...]}`. */
  readonly body?: BodyInit;
  /** `null`: no Content-Type. */
  readonly contentType?: string | null;
  readonly headers?: Readonly<Record<string, string>>;
  /** Publish on the ATIS-1000105 path of this SPC (the token's `spc` too, unless overridden). */
  readonly spc?: string;
  readonly path?: string;
  readonly method?: string;
}

async function publish(ctx: Ctx, o: PublishOptions = {}): Promise<Attempt> {
  const passports = o.passports ?? (await good(ctx));
  const token =
    o.token === null || o.authorization !== undefined
      ? undefined
      : await atisToken({
          credential: ctx.cred,
          action: "publish",
          dest: ctx.dest,
          orig: ctx.orig,
          passports: o.digestOf ?? passports,
          ...(o.spc === undefined ? {} : { spc: o.spc }),
          ...o.token,
        });
  const authorization = o.authorization ?? token?.authorization;
  const headers: Record<string, string> = {
    ...(o.contentType === null ? {} : { "Content-Type": o.contentType ?? "application/json" }),
    ...(authorization === undefined ? {} : { Authorization: authorization }),
    ...o.headers,
  };
  const jti = token === undefined ? undefined : jtiOf(token.claims);
  return {
    path: o.path ?? atisPath(ctx.dest, ctx.orig, o.spc),
    init: {
      method: o.method ?? "POST",
      headers,
      body: o.body ?? JSON.stringify({ passports }),
    },
    ...(jti === undefined ? {} : { jti }),
    ...(o.spc === undefined ? {} : { spc: o.spc }),
  };
}

async function retrieve(
  ctx: Ctx,
  o: { token?: TokenOverrides | null; authorization?: string; spc?: string; path?: string } = {},
): Promise<Attempt> {
  const token =
    o.token === null || o.authorization !== undefined
      ? undefined
      : await atisToken({
          credential: ctx.cred,
          action: "retrieve",
          dest: ctx.dest,
          orig: ctx.orig,
          ...(o.spc === undefined ? {} : { spc: o.spc }),
          ...o.token,
        });
  const jti = token === undefined ? undefined : jtiOf(token.claims);
  return {
    path: o.path ?? atisPath(ctx.dest, ctx.orig, o.spc),
    init: retrieveInit(o.authorization ?? token?.authorization),
    ...(jti === undefined ? {} : { jti }),
    ...(o.spc === undefined ? {} : { spc: o.spc }),
  };
}

/** A publish that must succeed (the replay and Idempotency-Key rows start with one). */
async function published(ctx: Ctx, o: PublishOptions = {}): Promise<Attempt> {
  const a = await publish(ctx, o);
  const res = await send(a);
  expect(res.status, await res.clone().text()).toBe(201);
  return a;
}

interface BadRow {
  readonly status: number;
  readonly code: string;
  readonly build: (ctx: Ctx) => Promise<Attempt>;
  /** Runs first (what a replay or an Idempotency-Key mismatch needs before it). */
  readonly prepare?: (ctx: Ctx) => Promise<Attempt>;
  /** False where re-using the jti proves nothing (the row is about a spent jti). */
  readonly fixable?: boolean;
  /** The 405 rows: the methods `Allow` must list. */
  readonly allow?: readonly string[];
}

const now = nowSeconds;
const longSpc = "S".repeat(33);
const keyOf = (n: number) => "k".repeat(n);

// ---------------------------------------------------------------------------------------------
// The table: input -> status -> code (docs/atis-api.md "Errors" has the same table)

const ROWS: Record<string, BadRow> = {
  // -- Path parameters (400, before anything else is read)
  "publish: DEST not a number": {
    status: 400,
    code: "INVALID_TN",
    build: (c) => publish(c, { path: atisPath("12o2555o1oo", c.orig) }),
  },
  "publish: DEST of 16 digits": {
    status: 400,
    code: "INVALID_TN",
    build: (c) => publish(c, { path: atisPath("1303555000000000", c.orig) }),
  },
  "publish: ORIG of 2 digits": {
    status: 400,
    code: "INVALID_TN",
    build: (c) => publish(c, { path: atisPath(c.dest, "12") }),
  },
  "publish: ORIG with a doubled +": {
    status: 400,
    code: "INVALID_TN",
    build: (c) => publish(c, { path: atisPath(c.dest, `%2B%2B${c.orig}`) }),
  },
  "publish: DEST in full-width digits": {
    status: 400,
    code: "INVALID_TN",
    build: (c) =>
      publish(c, {
        path: atisPath(
          encodeURIComponent("\uff11\uff13\uff10\uff13\uff15\uff15\uff15\uff10\uff10\uff10\uff11"),
          c.orig,
        ),
      }),
  },
  "publish: ORIG with a NUL byte": {
    status: 400,
    code: "INVALID_TN",
    build: (c) => publish(c, { path: atisPath(c.dest, `${c.orig}%00`) }),
  },
  "publish: DEST of 4,000 digits": {
    status: 400,
    code: "INVALID_TN",
    build: (c) => publish(c, { path: atisPath("1".repeat(4000), c.orig) }),
  },
  "publish: SPC with a hyphen": {
    status: 400,
    code: "INVALID_SPC",
    build: (c) => publish(c, { spc: "SP-CW", token: { spc: TEST_SPC } }),
  },
  "publish: SPC of 33 characters": {
    status: 400,
    code: "INVALID_SPC",
    build: (c) => publish(c, { spc: longSpc, token: { spc: TEST_SPC } }),
  },
  "publish: SPC with an encoded space": {
    status: 400,
    code: "INVALID_SPC",
    build: (c) => publish(c, { path: `/passports/SPC%20W/${c.dest}/${c.orig}`, token: { spc: TEST_SPC } }),
  },
  "retrieve: DEST not a number": {
    status: 400,
    code: "INVALID_TN",
    build: (c) => retrieve(c, { path: atisPath("abc", c.orig) }),
  },
  "retrieve: SPC of 33 characters": {
    status: 400,
    code: "INVALID_SPC",
    build: (c) => retrieve(c, { spc: longSpc, token: { spc: TEST_SPC } }),
  },

  // -- Other methods (405, Allow)
  "PUT on the DEST/ORIG path": {
    status: 405,
    code: "METHOD_NOT_ALLOWED",
    allow: ["GET", "POST"],
    build: (c) => publish(c, { method: "PUT" }),
  },
  "PATCH on the DEST/ORIG path": {
    status: 405,
    code: "METHOD_NOT_ALLOWED",
    allow: ["GET", "POST"],
    build: (c) => publish(c, { method: "PATCH" }),
  },
  "OPTIONS on the DEST/ORIG path": {
    status: 405,
    code: "METHOD_NOT_ALLOWED",
    allow: ["GET", "POST"],
    build: async (c) => ({ path: atisPath(c.dest, c.orig), init: { method: "OPTIONS" } }),
  },
  "DELETE on the SPC path": {
    status: 405,
    code: "METHOD_NOT_ALLOWED",
    allow: ["GET", "POST"],
    build: async (c) => ({ path: atisPath(c.dest, c.orig, TEST_SPC), init: { method: "DELETE" } }),
  },

  // -- Media type (415), size (413), JSON and shape (400)
  "publish: Content-Type text/plain": {
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
    build: (c) => publish(c, { contentType: "text/plain" }),
  },
  "publish: no Content-Type": {
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
    build: (c) => publish(c, { contentType: null, body: new TextEncoder().encode('{"passports":[]}') }),
  },
  "publish: Content-Type application/jsonp": {
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
    build: (c) => publish(c, { contentType: "application/jsonp" }),
  },
  "publish: body over 64 KiB": {
    status: 413,
    code: "BODY_TOO_LARGE",
    build: async (c) => {
      const passports = await good(c);
      return publish(c, { passports, body: JSON.stringify({ passports, pad: "x".repeat(65 * 1024) }) });
    },
  },
  "publish: body over 64 KiB, streamed without Content-Length": {
    status: 413,
    code: "BODY_TOO_LARGE",
    build: async (c) => {
      const passports = await good(c);
      const bytes = new TextEncoder().encode(JSON.stringify({ passports, pad: "x".repeat(70 * 1024) }));
      const a = await publish(c, { passports });
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 4096) controller.enqueue(bytes.subarray(i, i + 4096));
          controller.close();
        },
      });
      return { ...a, init: { ...a.init, body } };
    },
  },
  "publish: body nested 30,000 deep (under 64 KiB)": {
    status: 400,
    code: "INVALID_BODY",
    build: async (c) => {
      const passports = await good(c);
      const deep = `${"[".repeat(30_000)}${"]".repeat(30_000)}`;
      const body = `{"passports":${JSON.stringify(passports)},"x":${deep}}`;
      expect(body.length).toBeLessThan(64 * 1024);
      return publish(c, { passports, body });
    },
  },
  "publish: body nested 40 deep": {
    status: 400,
    code: "INVALID_BODY",
    build: async (c) => {
      const passports = await good(c);
      return publish(c, {
        passports,
        body: `{"passports":${JSON.stringify(passports)},"x":${'{"a":'.repeat(40)}1${"}".repeat(40)}}`,
      });
    },
  },
  "publish: body not JSON": {
    status: 400,
    code: "INVALID_BODY",
    build: (c) => publish(c, { body: '{"passports": [' }),
  },
  "publish: empty body": {
    status: 400,
    code: "INVALID_BODY",
    build: (c) => publish(c, { body: "" }),
  },
  "publish: body not UTF-8": {
    status: 400,
    code: "INVALID_BODY",
    build: (c) => publish(c, { body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }),
  },
  "publish: body a JSON array": {
    status: 400,
    code: "INVALID_BODY",
    build: async (c) => publish(c, { body: JSON.stringify(await good(c)) }),
  },
  "publish: body JSON null": {
    status: 400,
    code: "INVALID_BODY",
    build: (c) => publish(c, { body: "null" }),
  },
  "publish: no passports member": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: (c) => publish(c, { body: JSON.stringify({ passport: "x" }) }),
  },
  "publish: passports not an array": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: async (c) => {
      const [p] = await good(c);
      return publish(c, { body: JSON.stringify({ passports: p }) });
    },
  },
  "publish: empty passports array": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: (c) => publish(c, { passports: [] }),
  },
  "publish: 11 passports": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: async (c) => publish(c, { passports: await good(c, 11) }),
  },
  "publish: a passport of 8193 characters": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: async (c) => {
      const claims = { attest: "A", dest: { tn: [c.dest] }, iat: now(), orig: { tn: c.orig }, origid: "x" };
      const head = { alg: "ES256", ppt: "shaken", typ: "passport", x5u: x5uOf("valid") };
      let long = rawJws(head, { ...claims, pad: "" }, "c2ln");
      long = rawJws(
        head,
        { ...claims, pad: "p".repeat(Math.ceil(((8193 - long.length) * 3) / 4) + 3) },
        "c2ln",
      );
      expect(long.length).toBeGreaterThan(8192);
      return publish(c, { passports: [long] });
    },
  },
  "publish: a compact-form passport": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: async (c) => publish(c, { passports: [compactForm((await good(c))[0] as string)] }),
  },
  "publish: a passport of two segments": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: async (c) => {
      const [h, p] = ((await good(c))[0] as string).split(".");
      return publish(c, { passports: [`${h}.${p}`] });
    },
  },
  "publish: a passport with a non-base64url character": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: async (c) => publish(c, { passports: [`${(await good(c))[0]}!`] }),
  },
  "publish: a passport that is a number": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: async (c) => {
      const passports = await good(c);
      return publish(c, { passports, body: JSON.stringify({ passports: [...passports, 42] }) });
    },
  },
  "publish: alg none with an empty signature (not a full-form JWS)": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: async (c) => {
      const claims = { attest: "A", dest: { tn: [c.dest] }, iat: now(), orig: { tn: c.orig }, origid: "o" };
      return publish(c, {
        passports: [rawJws({ alg: "none", typ: "passport", ppt: "shaken", x5u: x5uOf("valid") }, claims)],
      });
    },
  },

  // -- The bearer token: present and well formed (401)
  "publish: no Authorization": {
    status: 401,
    code: "AUTH_MISSING",
    build: (c) => publish(c, { token: null }),
  },
  "retrieve: no Authorization": {
    status: 401,
    code: "AUTH_MISSING",
    build: (c) => retrieve(c, { token: null }),
  },
  "publish: Basic instead of Bearer": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { authorization: "Basic dXNlcjpwYXNz" }),
  },
  "publish: a bearer that is not a JWS": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { authorization: "Bearer abc.def.ghi" }),
  },
  "publish: a JWS of two segments": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: async (c) => {
      const { token } = await atisToken({
        credential: c.cred,
        action: "publish",
        dest: c.dest,
        orig: c.orig,
      });
      return publish(c, { authorization: `Bearer ${token.split(".").slice(0, 2).join(".")}` });
    },
  },
  "publish: a token of 16,385 characters": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { authorization: `Bearer ${"a".repeat(16_385)}` }),
  },
  "retrieve: a bearer that is not a JWS": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => retrieve(c, { authorization: "Bearer bm90.anNvbg.c2ln" }),
  },
  "publish: token alg HS256": {
    status: 401,
    code: "AUTH_INVALID",
    build: (c) => publish(c, { token: { alg: "HS256" } }),
  },
  "publish: token alg none": {
    status: 401,
    code: "AUTH_INVALID",
    build: (c) => publish(c, { token: { alg: "none" } }),
  },
  "publish: token alg ES384": {
    status: 401,
    code: "AUTH_INVALID",
    build: (c) => publish(c, { token: { alg: "ES384" } }),
  },
  "retrieve: token alg none": {
    status: 401,
    code: "AUTH_INVALID",
    build: (c) => retrieve(c, { token: { alg: "none" } }),
  },
  "publish: token signed by another key than its x5c certificate's": {
    status: 401,
    code: "AUTH_INVALID",
    build: (c) => publish(c, { token: { credential: { ...c.cred, privateKey: otherSigner.privateKey } } }),
  },
  "publish: token with both x5u and x5c": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { header: { x5u: x5uOf("valid") } } }),
  },
  "publish: token typ passport": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { header: { typ: "passport" } } }),
  },
  "publish: token without iat": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { claims: { iat: undefined } } }),
  },
  "publish: token iat a string": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { claims: { iat: String(now()) } } }),
  },
  "publish: token exp a string": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { claims: { exp: String(now() + 30) } } }),
  },
  "publish: token without jti": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { claims: { jti: undefined } } }),
  },
  "publish: token jti of 8 characters": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { jti: "abcdefgh" } }),
  },
  "publish: token without action": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { claims: { action: undefined } } }),
  },

  // -- Token claims: audience, freshness, action, exp (before any certificate work)
  "publish: wrong aud": {
    status: 401,
    code: "AUTH_AUDIENCE",
    build: (c) => publish(c, { token: { aud: "cps.other.example" } }),
  },
  "publish: aud an array without this CPS": {
    status: 401,
    code: "AUTH_AUDIENCE",
    build: (c) => publish(c, { token: { aud: ["cps.other.example", "https://cps.other.example"] } }),
  },
  "publish: aud of another port": {
    status: 401,
    code: "AUTH_AUDIENCE",
    build: (c) => publish(c, { token: { aud: "127.0.0.1:8788" } }),
  },
  "retrieve: wrong aud": {
    status: 401,
    code: "AUTH_AUDIENCE",
    build: (c) => retrieve(c, { token: { aud: "https://cps.other.example" } }),
  },
  "publish: iat 120 s old": {
    status: 401,
    code: "AUTH_EXPIRED",
    build: (c) => publish(c, { token: { iat: now() - 120 } }),
  },
  "publish: iat 60 s in the future": {
    status: 401,
    code: "AUTH_EXPIRED",
    build: (c) => publish(c, { token: { iat: now() + 60 } }),
  },
  "retrieve: iat 120 s old": {
    status: 401,
    code: "AUTH_EXPIRED",
    build: (c) => retrieve(c, { token: { iat: now() - 120 } }),
  },
  "publish: exp already past": {
    status: 401,
    code: "AUTH_EXPIRED",
    build: (c) => {
      const iat = now() - 50;
      return publish(c, { token: { iat, exp: iat + 10 } });
    },
  },
  "publish: exp 61 s after iat": {
    status: 400,
    code: "ATIS_EXP_TOO_LONG",
    build: (c) => {
      const iat = now();
      return publish(c, { token: { iat, exp: iat + 61 } });
    },
  },
  "publish: exp an hour after iat": {
    status: 400,
    code: "ATIS_EXP_TOO_LONG",
    build: (c) => {
      const iat = now();
      return publish(c, { token: { iat, exp: iat + 3600 } });
    },
  },
  "publish: exp equal to iat": {
    status: 400,
    code: "ATIS_EXP_TOO_LONG",
    build: (c) => {
      const iat = now();
      return publish(c, { token: { iat, exp: iat } });
    },
  },
  "retrieve: exp equal to iat": {
    status: 400,
    code: "ATIS_EXP_TOO_LONG",
    build: (c) => {
      const iat = now();
      return retrieve(c, { token: { iat, exp: iat } });
    },
  },
  "republish: exp 61 s after iat (the claim check answers before the peer check)": {
    status: 400,
    code: "ATIS_EXP_TOO_LONG",
    build: (c) => {
      const iat = now();
      return publish(c, { token: { action: "republish", iat, exp: iat + 61 } });
    },
  },
  "publish with a retrieve token": {
    status: 403,
    code: "AUTH_ACTION",
    build: (c) => publish(c, { token: { action: "retrieve" } }),
  },
  "publish with a keys:put token": {
    status: 403,
    code: "AUTH_ACTION",
    build: (c) => publish(c, { token: { action: "keys:put" } }),
  },
  "retrieve with a publish token": {
    status: 403,
    code: "AUTH_ACTION",
    build: (c) => retrieve(c, { token: { action: "publish" } }),
  },
  "retrieve with a republish token": {
    status: 403,
    code: "AUTH_ACTION",
    build: (c) => retrieve(c, { token: { action: "republish" } }),
  },

  // -- Token claims against the path (403 ATIS_CLAIM_MISMATCH)
  "publish: orig claim another number": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => publish(c, { token: { orig: freshTn() } }),
  },
  "publish: dest claim another number": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => publish(c, { token: { dest: freshTn() } }),
  },
  "publish: no orig claim": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => publish(c, { token: { claims: { orig: undefined } } }),
  },
  "publish: no dest claim": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => publish(c, { token: { claims: { dest: undefined } } }),
  },
  "publish: orig claim with two numbers": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => publish(c, { token: { claims: { orig: { tn: [c.orig, freshTn()] } } } }),
  },
  "publish: orig claim a bare string": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => publish(c, { token: { claims: { orig: c.orig } } }),
  },
  "publish on the SPC path: spc claim another SPC": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => publish(c, { spc: TEST_SPC, token: { spc: "SPCX" } }),
  },
  "publish on the SPC path: no spc claim": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => publish(c, { spc: TEST_SPC, token: { claims: { spc: undefined } } }),
  },
  "publish on the SPC path: spc claim in another case": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => publish(c, { spc: TEST_SPC, token: { spc: TEST_SPC.toLowerCase() } }),
  },
  "retrieve: dest claim another number": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => retrieve(c, { token: { dest: freshTn() } }),
  },
  "retrieve: orig claim another number": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => retrieve(c, { token: { orig: freshTn() } }),
  },
  "retrieve on the SPC path: spc claim another SPC": {
    status: 403,
    code: "ATIS_CLAIM_MISMATCH",
    build: (c) => retrieve(c, { spc: TEST_SPC, token: { spc: "SPCX" } }),
  },

  // -- The passports digest (403 ATIS_DIGEST_MISMATCH), each accepted variant tampered
  "publish: no passports digest": {
    status: 403,
    code: "ATIS_DIGEST_MISMATCH",
    build: (c) => publish(c, { token: { claims: { passports: undefined } } }),
  },
  "publish: passports digest a number": {
    status: 403,
    code: "ATIS_DIGEST_MISMATCH",
    build: (c) => publish(c, { token: { claims: { passports: 42 } } }),
  },
  "publish: digest over other PASSporTs": {
    status: 403,
    code: "ATIS_DIGEST_MISMATCH",
    build: async (c) => publish(c, { digestOf: await good(c) }),
  },
  "publish: digest over the PASSporTs in another order": {
    status: 403,
    code: "ATIS_DIGEST_MISMATCH",
    build: async (c) => {
      const passports = await good(c, 2);
      return publish(c, { passports, digestOf: [...passports].reverse() });
    },
  },
  ...Object.fromEntries(
    DIGEST_VARIANTS.map((variant): [string, BadRow] => [
      `publish: digest variant ${variant} tampered`,
      {
        status: 403,
        code: "ATIS_DIGEST_MISMATCH",
        build: async (c) => {
          const passports = await good(c);
          const digest = await passportsDigest(passports, variant);
          return publish(c, { passports, token: { claims: { passports: tamper(digest, 12) } } });
        },
      },
    ]),
  ),
  "publish: digest variant A without its sha256- prefix": {
    status: 403,
    code: "ATIS_DIGEST_MISMATCH",
    build: async (c) => {
      const passports = await good(c);
      const digest = (await passportsDigest(passports, "A")).slice("sha256-".length);
      return publish(c, { passports, token: { claims: { passports: digest } } });
    },
  },
  "publish: digest variant A as hex": {
    status: 403,
    code: "ATIS_DIGEST_MISMATCH",
    build: async (c) => {
      const passports = await good(c);
      const hex = atob((await passportsDigest(passports, "B")).slice("sha256-".length));
      return publish(c, { passports, token: { claims: { passports: `sha256-${hex}` } } });
    },
  },
  "publish: digest variant C over the passports only, the body carrying more": {
    status: 403,
    code: "ATIS_DIGEST_MISMATCH",
    build: async (c) => {
      const passports = await good(c);
      return publish(c, {
        passports,
        body: JSON.stringify({ passports, token: "an original publisher's token" }),
        token: { digestVariant: "C" },
      });
    },
  },

  // -- Every PASSporT verified before anything is stored (RFC 8225; 400/403)
  "publish: a PASSporT with a bad signature": {
    status: 400,
    code: "PASSPORT_SIGNATURE",
    build: async (c) => publish(c, { passports: [badSignature((await good(c))[0] as string)] }),
  },
  "publish: a PASSporT signed by another key than its x5u certificate's": {
    status: 400,
    code: "PASSPORT_SIGNATURE",
    build: async (c) =>
      publish(c, { passports: [await shakenPassport(otherSigner, { orig: c.orig, dest: c.dest })] }),
  },
  "publish: one good PASSporT and one with a bad signature": {
    status: 400,
    code: "PASSPORT_SIGNATURE",
    build: async (c) => {
      const [a, b] = await good(c, 2);
      return publish(c, { passports: [a as string, badSignature(b as string)] });
    },
  },
  "publish: a PASSporT 120 s old": {
    status: 400,
    code: "PASSPORT_STALE",
    build: async (c) =>
      publish(c, {
        passports: [await shakenPassport(signer, { orig: c.orig, dest: c.dest, iat: now() - 120 })],
      }),
  },
  "publish: a PASSporT 120 s in the future": {
    status: 400,
    code: "PASSPORT_STALE",
    build: async (c) =>
      publish(c, {
        passports: [await shakenPassport(signer, { orig: c.orig, dest: c.dest, iat: now() + 120 })],
      }),
  },
  "publish: a PASSporT with alg none": {
    status: 400,
    code: "PASSPORT_ALG",
    build: async (c) => {
      const claims = { attest: "A", dest: { tn: [c.dest] }, iat: now(), orig: { tn: c.orig }, origid: "o" };
      const head = { alg: "none", ppt: "shaken", typ: "passport", x5u: x5uOf("valid") };
      return publish(c, { passports: [rawJws(head, claims, "c2lnbmF0dXJl")] });
    },
  },
  "publish: a PASSporT with alg HS256": {
    status: 400,
    code: "PASSPORT_ALG",
    build: async (c) => {
      const claims = { attest: "A", dest: { tn: [c.dest] }, iat: now(), orig: { tn: c.orig }, origid: "o" };
      const head = { alg: "HS256", ppt: "shaken", typ: "passport", x5u: x5uOf("valid") };
      return publish(c, { passports: [rawJws(head, claims, "c2lnbmF0dXJl")] });
    },
  },
  "publish: a PASSporT of an unsupported ppt": {
    status: 400,
    code: "PASSPORT_PPT_UNSUPPORTED",
    build: async (c) => {
      const [h, p, s] = ((await good(c))[0] as string).split(".") as [string, string, string];
      const header = JSON.parse(atob(h.replace(/-/g, "+").replace(/_/g, "/"))) as Record<string, unknown>;
      const swapped = rawJws(
        { ...header, ppt: "div" },
        JSON.parse(atob(p.replace(/-/g, "+").replace(/_/g, "/"))),
        s,
      );
      return publish(c, { passports: [swapped] });
    },
  },
  "publish: a PASSporT whose x5u is http to a public host": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: async (c) =>
      publish(c, {
        passports: [
          await shakenPassport(signer, {
            orig: c.orig,
            dest: c.dest,
            x5u: x5uOf("valid").replace("https:", "http:"),
          }),
        ],
      }),
  },
  "publish: a PASSporT whose x5u is an IP literal": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: async (c) =>
      publish(c, {
        passports: [
          await shakenPassport(signer, { orig: c.orig, dest: c.dest, x5u: "https://192.0.2.7/valid.pem" }),
        ],
      }),
  },
  "publish: a PASSporT whose x5u cannot be fetched (404)": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: async (c) =>
      publish(c, {
        passports: [
          await shakenPassport(signer, { orig: c.orig, dest: c.dest, x5u: `${TEST_X5U_ORIGIN}/gone.pem` }),
        ],
      }),
  },
  "publish: a PASSporT whose x5u serves a CRL, not a certificate": {
    status: 400,
    code: "CERT_MALFORMED",
    build: async (c) =>
      publish(c, {
        passports: [await shakenPassport(signer, { orig: c.orig, dest: c.dest, x5u: pki.crlUrls.root })],
      }),
  },
  "publish: a PASSporT signed by a revoked certificate": {
    status: 403,
    code: "CERT_REVOKED",
    build: async (c) =>
      publish(c, {
        passports: [
          await shakenPassport(revokedSigner, { orig: c.orig, dest: c.dest, x5u: x5uOf("crlRevokedLeaf") }),
        ],
      }),
  },
  "publish: a PASSporT whose certificate chains to another root": {
    status: 403,
    code: "CERT_UNTRUSTED",
    build: async (c) =>
      publish(c, {
        passports: [
          await shakenPassport(await pki.credential("wrongAnchor"), {
            orig: c.orig,
            dest: c.dest,
            x5u: x5uOf("wrongAnchor"),
          }),
        ],
      }),
  },
  "publish: a PASSporT whose certificate has expired": {
    status: 403,
    code: "CERT_EXPIRED",
    build: async (c) =>
      publish(c, {
        passports: [
          await shakenPassport(await pki.credential("expired"), {
            orig: c.orig,
            dest: c.dest,
            x5u: x5uOf("expired"),
          }),
        ],
      }),
  },
  "publish: a PASSporT from another calling number than the path's": {
    status: 400,
    code: "ATIS_PASSPORT_MISMATCH",
    build: async (c) =>
      publish(c, { passports: [await shakenPassport(signer, { orig: freshTn(), dest: c.dest })] }),
  },
  "publish: a signed PASSporT whose dest.tn is not canonical": {
    status: 400,
    code: "PASSPORT_CLAIMS",
    build: async (c) => {
      const head = { alg: "ES256", ppt: "shaken", typ: "passport", x5u: x5uOf("valid") };
      const claims = {
        attest: "A",
        dest: { tn: [`+${c.dest}`] },
        iat: now(),
        orig: { tn: c.orig },
        origid: "o",
      };
      return publish(c, { passports: [await signedJws(signer, head, claims)] });
    },
  },
  "publish: a signed shaken PASSporT without attest": {
    status: 400,
    code: "PASSPORT_CLAIMS",
    build: async (c) => {
      const head = { alg: "ES256", ppt: "shaken", typ: "passport", x5u: x5uOf("valid") };
      const claims = { dest: { tn: [c.dest] }, iat: now(), orig: { tn: c.orig }, origid: "o" };
      return publish(c, { passports: [await signedJws(signer, head, claims)] });
    },
  },
  "publish: a signed PASSporT with typ JWT (an access token posing as a PASSporT)": {
    status: 400,
    code: "PASSPORT_MALFORMED",
    build: async (c) => {
      const head = { alg: "ES256", ppt: "shaken", typ: "JWT", x5u: x5uOf("valid") };
      const claims = { attest: "A", dest: { tn: [c.dest] }, iat: now(), orig: { tn: c.orig }, origid: "o" };
      return publish(c, { passports: [await signedJws(signer, head, claims)] });
    },
  },
  "publish: a signed PASSporT with a crit header": {
    status: 400,
    code: "PASSPORT_MALFORMED",
    build: async (c) => {
      const head = { alg: "ES256", crit: ["div"], ppt: "shaken", typ: "passport", x5u: x5uOf("valid") };
      const claims = { attest: "A", dest: { tn: [c.dest] }, iat: now(), orig: { tn: c.orig }, origid: "o" };
      return publish(c, { passports: [await signedJws(signer, head, claims)] });
    },
  },
  "publish: a signed PASSporT without x5u": {
    status: 400,
    code: "PASSPORT_MALFORMED",
    build: async (c) => {
      const head = { alg: "ES256", ppt: "shaken", typ: "passport" };
      const claims = { attest: "A", dest: { tn: [c.dest] }, iat: now(), orig: { tn: c.orig }, origid: "o" };
      return publish(c, { passports: [await signedJws(signer, head, claims)] });
    },
  },
  "publish: a PASSporT whose orig is a URI": {
    status: 400,
    code: "ATIS_PASSPORT_MISMATCH",
    build: async (c) => {
      const claims = {
        attest: "A" as const,
        dest: { tn: [c.dest] },
        iat: now(),
        orig: { uri: `sip:${c.orig}@example.net` },
        origid: "o",
      };
      const jws = await createPassport({ x5u: x5uOf("valid"), ppt: "shaken", claims }, signer.privateKey);
      return publish(c, { passports: [jws] });
    },
  },
  "publish: a PASSporT whose x5u answers with a redirect": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: async (c) =>
      publish(c, {
        passports: [
          await shakenPassport(signer, {
            orig: c.orig,
            dest: c.dest,
            x5u: `${TEST_X5U_ORIGIN}/redirect/valid.pem`,
          }),
        ],
      }),
  },
  "publish: a PASSporT to another called number than the path's": {
    status: 400,
    code: "ATIS_PASSPORT_MISMATCH",
    build: async (c) =>
      publish(c, { passports: [await shakenPassport(signer, { orig: c.orig, dest: freshTn() })] }),
  },
  "publish on the SPC path: a PASSporT to another called number": {
    status: 400,
    code: "ATIS_PASSPORT_MISMATCH",
    build: async (c) =>
      publish(c, {
        spc: TEST_SPC,
        passports: [await shakenPassport(signer, { orig: c.orig, dest: freshTn() })],
      }),
  },

  // -- The token's certificate (x5u rules, chain)
  "publish: token x5u over http to a public host": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: (c) =>
      publish(c, { token: { x5u: x5uOf("valid").replace("https:", "http:"), credential: signer } }),
  },
  "publish: token x5u an IPv4 literal": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: (c) => publish(c, { token: { x5u: "https://192.0.2.7/valid.pem", credential: signer } }),
  },
  "publish: token x5u an IPv6 literal": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: (c) => publish(c, { token: { x5u: "https://[2001:db8::7]/valid.pem", credential: signer } }),
  },
  "publish: token x5u on port 8443": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: (c) =>
      publish(c, {
        token: { x5u: x5uOf("valid").replace(".example/", ".example:8443/"), credential: signer },
      }),
  },
  "publish: token x5u a .local name": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: (c) => publish(c, { token: { x5u: "https://certs.local/valid.pem", credential: signer } }),
  },
  "retrieve: token x5u localhost": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: (c) => retrieve(c, { token: { x5u: "https://localhost/valid.pem", credential: signer } }),
  },
  "publish: token x5u that cannot be fetched (404)": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: (c) => publish(c, { token: { x5u: `${TEST_X5U_ORIGIN}/gone.pem`, credential: signer } }),
  },
  "publish: token x5u answering with a redirect": {
    status: 400,
    code: "X5U_FETCH_FAILED",
    build: (c) => publish(c, { token: { x5u: `${TEST_X5U_ORIGIN}/redirect/valid.pem`, credential: signer } }),
  },
  "publish: token x5c of 9 certificates": {
    status: 400,
    code: "CERT_MALFORMED",
    build: (c) => {
      const leaf = c.cred.der[0] as Uint8Array;
      return publish(c, { token: { credential: { ...c.cred, der: Array.from({ length: 9 }, () => leaf) } } });
    },
  },
  "publish: token x5c entry not base64": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { header: { x5c: ["not base64!"] } } }),
  },
  "publish: token with a crit header": {
    status: 401,
    code: "AUTH_MALFORMED",
    build: (c) => publish(c, { token: { header: { crit: ["exp"] } } }),
  },
  "publish: token nbf a minute ahead": {
    status: 401,
    code: "AUTH_EXPIRED",
    build: (c) => publish(c, { token: { claims: { nbf: now() + 60 } } }),
  },
  "publish: token x5u serving a CRL, not a certificate": {
    status: 400,
    code: "CERT_MALFORMED",
    build: (c) => publish(c, { token: { x5u: pki.crlUrls.root, credential: signer } }),
  },
  "publish: token certificate chaining to another root": {
    status: 403,
    code: "CERT_UNTRUSTED",
    build: async (c) => publish(c, { token: { credential: await pki.credential("wrongAnchor") } }),
  },
  "publish: token certificate expired": {
    status: 403,
    code: "CERT_EXPIRED",
    build: async (c) => publish(c, { token: { credential: await pki.credential("expired") } }),
  },

  // -- Idempotency-Key (400 before anything is spent; 422 for another request under a used key)
  "publish: empty Idempotency-Key": {
    status: 400,
    code: "IDEMPOTENCY_KEY_INVALID",
    build: (c) => publish(c, { headers: { "Idempotency-Key": "" } }),
  },
  "publish: Idempotency-Key of 256 characters": {
    status: 400,
    code: "IDEMPOTENCY_KEY_INVALID",
    build: (c) => publish(c, { headers: { "Idempotency-Key": keyOf(256) } }),
  },
  "publish: Idempotency-Key with a space": {
    status: 400,
    code: "IDEMPOTENCY_KEY_INVALID",
    build: (c) => publish(c, { headers: { "Idempotency-Key": "key with space" } }),
  },
  "publish: Idempotency-Key with a Latin-1 letter": {
    status: 400,
    code: "IDEMPOTENCY_KEY_INVALID",
    build: (c) => publish(c, { headers: { "Idempotency-Key": "cl\u00e9" } }),
  },
  "publish: a used Idempotency-Key for other PASSporTs": {
    status: 422,
    code: "IDEMPOTENCY_KEY_MISMATCH",
    prepare: (c) => published(c, { headers: { "Idempotency-Key": "order-4711" } }),
    build: (c) => publish(c, { headers: { "Idempotency-Key": "order-4711" } }),
  },

  // -- Several things wrong at once: the first check in the plan's order answers
  "first wins: invalid DEST, no Authorization": {
    status: 400,
    code: "INVALID_TN",
    build: (c) => publish(c, { token: null, path: atisPath("12", c.orig) }),
  },
  "first wins: text/plain, no Authorization": {
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
    build: (c) => publish(c, { token: null, contentType: "text/plain" }),
  },
  "first wins: 11 passports, a stale token": {
    status: 400,
    code: "ATIS_PASSPORTS_INVALID",
    build: async (c) => publish(c, { passports: await good(c, 11), token: { iat: now() - 600 } }),
  },
  "first wins: a stale token, a PASSporT with a bad signature": {
    status: 401,
    code: "AUTH_EXPIRED",
    build: async (c) =>
      publish(c, { passports: [badSignature((await good(c))[0] as string)], token: { iat: now() - 600 } }),
  },
  "first wins: a digest mismatch, a PASSporT of a revoked certificate": {
    status: 403,
    code: "ATIS_DIGEST_MISMATCH",
    build: async (c) =>
      publish(c, {
        passports: [
          await shakenPassport(revokedSigner, { orig: c.orig, dest: c.dest, x5u: x5uOf("crlRevokedLeaf") }),
        ],
        digestOf: await good(c),
      }),
  },
  "first wins: an spc the certificate does not list, a PASSporT with a bad signature": {
    status: 403,
    code: "CERT_NOT_AUTHORISED",
    build: async (c) =>
      publish(c, { passports: [badSignature((await good(c))[0] as string)], token: { spc: "SPCX" } }),
  },
  "first wins: a used Idempotency-Key for other PASSporTs, one with a bad signature": {
    status: 422,
    code: "IDEMPOTENCY_KEY_MISMATCH",
    prepare: (c) => published(c, { headers: { "Idempotency-Key": "order-4712" } }),
    build: async (c) =>
      publish(c, {
        passports: [badSignature((await good(c))[0] as string)],
        headers: { "Idempotency-Key": "order-4712" },
      }),
  },

  // -- Replay: the second use of an accepted token (401 AUTH_REPLAYED), nothing stored twice
  "publish: the same accepted token again (no Idempotency-Key)": {
    status: 401,
    code: "AUTH_REPLAYED",
    fixable: false,
    prepare: (c) => published(c),
    build: async (c) => lastPrepared.get(c) as Attempt,
  },
  "publish: an accepted token's jti in a new token for new PASSporTs": {
    status: 401,
    code: "AUTH_REPLAYED",
    fixable: false,
    prepare: (c) => published(c),
    build: async (c) => publish(c, { token: { jti: (lastPrepared.get(c) as Attempt).jti } }),
  },
  "retrieve: the same accepted token again": {
    status: 401,
    code: "AUTH_REPLAYED",
    fixable: false,
    prepare: async (c) => {
      const a = await retrieve(c);
      const res = await send(a);
      // Nothing there yet: 404 in the ATIS format, the jti spent all the same (the token was good).
      await expectAtisError(res, 404, "NOT_FOUND");
      return a;
    },
    build: async (c) => lastPrepared.get(c) as Attempt,
  },
};

/** What each row's `prepare` returned (the replay rows send it again). */
const lastPrepared = new WeakMap<Ctx, Attempt>();

describe("ATIS routes: bad input, one row each (status, code, nothing stored, jti not spent)", () => {
  it.each(Object.entries(ROWS))("%s", async (_name, row) => {
    const ctx: Ctx = { dest: freshTn(), orig: freshTn(), cred: await atisCredential(pki) };
    if (row.prepare) lastPrepared.set(ctx, await row.prepare(ctx));
    const storedBefore = await storedFor(env, ctx.dest, ctx.orig);
    const rowsBefore = await storeRowCounts(env, ctx.dest);

    const attempt = await row.build(ctx);
    const res = await send(attempt);
    const allow = res.headers.get("allow");
    const body = JSON.stringify(await expectAtisError(res, row.status, row.code));
    // docs/design.md invariant 6 and threat model #10: no number, no certificate URL or host in an answer.
    for (const secret of [
      ctx.dest,
      ctx.orig,
      "stir-oob-test.example",
      "192.0.2",
      "2001:db8",
      "8443",
      "certs.local",
      "localhost",
    ]) {
      expect(body).not.toContain(secret);
    }
    if (row.allow) {
      const listed = (allow ?? "").split(",").map((m) => m.trim());
      for (const m of row.allow) expect(listed).toContain(m);
    }

    // Nothing stored: the same PASSporTs, the same rows in every table (Idempotency-Key records too).
    expect(await storedFor(env, ctx.dest, ctx.orig)).toEqual(storedBefore);
    expect(await storeRowCounts(env, ctx.dest)).toEqual(rowsBefore);

    // The jti is not spent: a correct publish carrying the same jti is accepted, and a covering
    // retrieval then finds exactly what was there plus that publish, none of the refused PASSporTs.
    if (attempt.jti !== undefined && row.fixable !== false) {
      const passports = await good(ctx);
      const fixed = await publish(ctx, {
        passports,
        token: { jti: attempt.jti },
        ...(attempt.spc === undefined || !/^[A-Za-z0-9]{1,32}$/.test(attempt.spc) ? {} : { spc: TEST_SPC }),
      });
      const ok = await send(fixed);
      expect(ok.status, await ok.clone().text()).toBe(201);
      expect(await storedFor(env, ctx.dest, ctx.orig)).toEqual([...storedBefore, ...passports]);
      const back = await send(await retrieve(ctx));
      expect(back.status).toBe(200);
      expect((await back.json<{ passports: string[] }>()).passports).toEqual([...storedBefore, ...passports]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Controls: the near-misses' correct forms are accepted (so each refusal above is for its reason)

describe("ATIS routes: the accepted forms the rows above are near-misses of", () => {
  const fresh = async (): Promise<Ctx> => ({
    dest: freshTn(),
    orig: freshTn(),
    cred: await atisCredential(pki),
  });

  async function expectPublished(ctx: Ctx, a: Attempt, passports: readonly string[]) {
    const res = await send(a);
    expect(res.status, await res.clone().text()).toBe(201);
    expect(res.headers.get("content-type")?.split(";")[0]).toBe("application/json");
    expect(await res.json()).toEqual({ status: 201, message: "Created" });
    expect(await storedFor(env, ctx.dest, ctx.orig)).toEqual(passports);
    // The row-count snapshot the table relies on does see a publish (so "unchanged" means something).
    expect((await storeRowCounts(env, ctx.dest)).passports).toBeGreaterThanOrEqual(passports.length);
  }

  it.each(DIGEST_VARIANTS)("digest variant %s", async (variant) => {
    const ctx = await fresh();
    const passports = await good(ctx, 2);
    await expectPublished(
      ctx,
      await publish(ctx, { passports, token: { digestVariant: variant } }),
      passports,
    );
  });

  it.each([
    ["the host with its port", ATIS_AUDIENCE],
    ["the host name", new URL(TEST_CPS_ORIGIN).hostname],
    ["the origin", TEST_CPS_ORIGIN],
    ["an array holding the host", ["cps.other.example", ATIS_AUDIENCE]],
  ])("aud %s", async (_n, aud) => {
    const ctx = await fresh();
    const passports = await good(ctx);
    await expectPublished(ctx, await publish(ctx, { passports, token: { aud } }), passports);
  });

  it("Content-Type application/json with a charset", async () => {
    const ctx = await fresh();
    const passports = await good(ctx);
    await expectPublished(
      ctx,
      await publish(ctx, { passports, contentType: "application/json; charset=utf-8" }),
      passports,
    );
  });

  it("exp 60 s after iat, on the SPC path", async () => {
    const ctx = await fresh();
    const passports = await good(ctx);
    const iat = now();
    await expectPublished(
      ctx,
      await publish(ctx, { passports, spc: TEST_SPC, token: { iat, exp: iat + 60 } }),
      passports,
    );
  });

  it("orig and dest claims in another spelling of the same numbers", async () => {
    const ctx = await fresh();
    const passports = await good(ctx);
    const a = await publish(ctx, {
      passports,
      token: { claims: { orig: { tn: [`+${ctx.orig}`] }, dest: { tn: [freshTn(), `+${ctx.dest}`] } } },
    });
    await expectPublished(ctx, a, passports);
  });

  it("a retrieve token with exp 300 s after iat (VESPER's retrieve example): answered, not refused", async () => {
    const ctx = await fresh();
    const passports = await good(ctx);
    await expectPublished(ctx, await publish(ctx, { passports }), passports);
    const iat = now();
    const res = await send(await retrieve(ctx, { token: { iat, exp: iat + 300 } }));
    expect(res.status, await res.clone().text()).toBe(200);
    expect((await res.json<{ passports: string[] }>()).passports).toEqual(passports);
  });

  it("dest claim a bare string and orig.tn a bare string (both allowed forms)", async () => {
    const ctx = await fresh();
    const passports = await good(ctx);
    const a = await publish(ctx, {
      passports,
      token: { claims: { dest: { tn: ctx.dest }, orig: { tn: ctx.orig } } },
    });
    await expectPublished(ctx, a, passports);
  });

  it("a token naming its certificate by x5u (the test repository) and by an inline chain URL", async () => {
    const ctx = await fresh();
    const passports = await good(ctx);
    await expectPublished(
      ctx,
      await publish(ctx, { passports, token: { credential: signer, x5u: x5uOf("valid") } }),
      passports,
    );
    const more = await good(ctx);
    await expectPublished(
      ctx,
      await publish(ctx, { passports: more, token: { x5u: chainX5u(ctx.cred.der) } }),
      [...passports, ...more],
    );
  });

  it("an Idempotency-Key of 255 printable characters, sent twice: one record, the same answer", async () => {
    const ctx = await fresh();
    const passports = await good(ctx);
    const key = `${"!~".repeat(127)}k`;
    const a = await publish(ctx, { passports, headers: { "Idempotency-Key": key } });
    await expectPublished(ctx, a, passports);
    // The exact resend (same token, its jti spent): the stored answer, nothing new.
    const again = await send(a);
    expect(again.status).toBe(201);
    expect(await again.json()).toEqual({ status: 201, message: "Created" });
    expect(await storedFor(env, ctx.dest, ctx.orig)).toEqual(passports);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: random requests on the ATIS paths never get a 5xx and never change the store

describe("ATIS routes: random requests", () => {
  const RUNS = Math.min(Number(env.FUZZ_RUNS) || 200, 400);
  const DEST = "13035559990";
  const ORIG = "13035559991";

  it(`never a 5xx or a stack, a 4xx always with status and code, nothing stored (${RUNS} runs)`, async () => {
    const ctx: Ctx = { dest: DEST, orig: ORIG, cred: await atisCredential(pki) };
    const passports = await good(ctx);
    // Real material for the generator to recombine: well-formed tokens (valid, or wrong in one claim)
    // and PASSporTs, so the runs get past the early checks too.
    const tokens = await Promise.all([
      atisToken({ credential: ctx.cred, action: "publish", dest: DEST, orig: ORIG, passports }),
      atisToken({ credential: ctx.cred, action: "publish", dest: DEST, orig: ORIG, passports: [] }),
      atisToken({ credential: ctx.cred, action: "retrieve", dest: DEST, orig: ORIG }),
      atisToken({
        credential: ctx.cred,
        action: "publish",
        dest: DEST,
        orig: ORIG,
        spc: TEST_SPC,
        passports,
      }),
      atisToken({ credential: ctx.cred, action: "publish", dest: DEST, orig: ORIG, alg: "none" }),
    ]);
    let before = await storeRowCounts(env, DEST);

    const segment = fc.oneof(
      { arbitrary: fc.constantFrom(DEST, ORIG, TEST_SPC, `%2B${DEST}`, "SPCX"), weight: 6 },
      fc.string({ maxLength: 20 }).map(encodeURIComponent),
      fc.string({ unit: fc.constantFrom(..."0123456789+-.%x "), maxLength: 18 }).map(encodeURIComponent),
    );
    const jsonish = fc.oneof(
      fc.constant(JSON.stringify({ passports })),
      fc.json(),
      fc.string(),
      fc
        .array(
          fc.oneof(
            fc.constantFrom(...passports),
            fc.string(),
            fc.constant(compactForm(passports[0] as string)),
          ),
          {
            maxLength: 12,
          },
        )
        .map((list) => JSON.stringify({ passports: list })),
      fc.uint8Array({ maxLength: 64 }),
    );
    const authorization = fc.oneof(
      fc.constantFrom(...tokens.map((t) => t.authorization)),
      fc.constant(undefined),
      fc.string({ maxLength: 40 }).map((s) => `Bearer ${s}`),
      fc.string({ unit: fc.constantFrom(..."abcXYZ09-_."), maxLength: 60 }).map((s) => `Bearer ${s}`),
    );
    const printable = fc.string({
      unit: fc.integer({ min: 0x20, max: 0x7e }).map((n) => String.fromCharCode(n)),
      maxLength: 30,
    });
    const request = fc.record({
      method: fc.constantFrom("GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"),
      segments: fc.array(segment, { minLength: 2, maxLength: 3 }),
      authorization,
      contentType: fc.option(
        fc.constantFrom(
          "application/json",
          "application/json; charset=utf-8",
          "text/plain",
          "application/problem+json",
          "",
        ),
        { nil: undefined },
      ),
      idempotencyKey: fc.option(printable, { nil: undefined }),
      body: jsonish,
    });

    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers = new Headers();
        if (r.authorization !== undefined) headers.set("Authorization", r.authorization);
        if (r.contentType !== undefined) headers.set("Content-Type", r.contentType);
        if (r.idempotencyKey !== undefined) headers.set("Idempotency-Key", r.idempotencyKey);
        const hasBody = r.method !== "GET" && r.method !== "HEAD";
        const res = await fetchApp(`${BASE}/passports/${r.segments.join("/")}`, {
          method: r.method,
          headers,
          ...(hasBody ? { body: r.body } : {}),
        });
        const text = await res.text();
        expect(res.status, text).toBeLessThan(500);
        expect(text).not.toMatch(STACK);
        if (res.status >= 400 && r.method !== "HEAD" && r.method !== "OPTIONS") {
          // Every answer on these paths is in the ATIS format (a miss of the route shape is the
          // app's 404 problem, which also carries `status` and `code`).
          const body = JSON.parse(text) as { status?: unknown; code?: unknown };
          expect(body.status).toBe(res.status);
          expect(typeof body.code).toBe("string");
        }
        // A refusal changes nothing; an accepted publish (a valid token with its body) is the new baseline.
        if (res.status >= 400) expect(await storeRowCounts(env, DEST)).toEqual(before);
        else before = await storeRowCounts(env, DEST);
      }),
      { numRuns: RUNS },
    );
  });
});
