/**
 * An in-memory stand-in for the CPS HTTP API v1 (docs/wire-format.md §3) plus the discovery and
 * key-directory reads, as a `fetch` function, for the client library's unit tests. It keeps the
 * behaviours the client relies on: 201 + Location on store, dummies in every list, problem+json errors,
 * Cache-Control max-age on key answers, exact (`GET /keys/{tn}`) and prefix (`GET /keys?prefix=`, with
 * `cursor` pages) lookups, each key served with its signed record (`record`) when the fake was given
 * a signer. The real server is exercised by test/e2e/.
 */
import { AuthenticationService } from "../../src/client/as.js";
import { Discovery } from "../../src/client/discovery.js";
import { decodeEnvelope, encodeEnvelope, makeDummy } from "../../src/stir/envelope.js";
import { blockContainsTn, parseBlock } from "../../src/stir/number-blocks.js";
import type { TestCredential } from "../../src/stir/test-pki.js";
import { type CanonicalTn, canonicalTn } from "../../src/stir/tn.js";
import { signedKeyRecord } from "../helpers/key-records.js";
import { x5uUrl } from "../helpers/x5u.js";

export interface FakeCps {
  readonly base: string;
  readonly fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  /** Requests seen, as "METHOD path". */
  readonly log: string[];
  /** Served entries per canonical number (the key directory): the JWK members, and `record` if signed. */
  readonly keys: Map<string, Record<string, unknown>[]>;
  readonly stored: Map<string, { id: string; blob: string }[]>;
  /** Headers of every store request. */
  readonly storeHeaders: Headers[];
  /** Make the next `n` stores fail with this status and code. */
  failStores(n: number, status: number, code: string): void;
  /**
   * Registers a key for one number; with a `signer` (fake option or here) the entry carries a signed
   * record for the number, made by that credential. Resolves when the entry is in place.
   */
  registerKey(
    tn: string,
    kid: string,
    publicKey: Uint8Array,
    signer?: KeySigner | null,
  ): Promise<Record<string, unknown>>;
  /** Serves any entry for `tn` as it is (a directory that lies, or one with old unsigned entries). */
  addEntry(tn: string, entry: Record<string, unknown>): void;
}

/** A STIR credential that signs key records (TestCredential fits). */
export interface KeySigner {
  readonly privateKey: CryptoKey;
  readonly der: readonly Uint8Array[];
}

function problem(status: number, code: string): Response {
  return new Response(JSON.stringify({ type: "about:blank", title: code, status, code }), {
    status,
    headers: { "content-type": "application/problem+json", "cache-control": "no-store" },
  });
}

function b64u(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

export function fakeCps(
  options: {
    discoveryTtl?: number;
    keysMaxAge?: number;
    dummies?: number;
    /** Signs every registered key's record (unless `registerKey` is given `null`). */
    signer?: KeySigner;
    /** Entries per prefix page (default 1000). */
    pageSize?: number;
  } = {},
): FakeCps {
  const base = "https://cps.test";
  const log: string[] = [];
  const keys = new Map<string, Record<string, unknown>[]>();
  const stored = new Map<string, { id: string; blob: string }[]>();
  const storeHeaders: Headers[] = [];
  let failures: { n: number; status: number; code: string } = { n: 0, status: 0, code: "" };

  const handle = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    log.push(`${request.method} ${url.pathname}${url.pathname === "/keys" ? url.search : ""}`);
    if (url.origin !== base) return problem(404, "NOT_FOUND");
    if (url.pathname === "/.well-known/stir-oob") {
      const tn = canonicalTn(url.searchParams.get("tn") ?? "");
      return Response.json({ prefix: tn, cps: base, keys: `${base}/keys`, ttl: options.discoveryTtl ?? 300 });
    }
    const key = /^\/keys\/([0-9]+)$/.exec(url.pathname);
    if (key?.[1]) {
      return Response.json(
        { keys: keys.get(key[1]) ?? [] },
        { headers: { "cache-control": `public, max-age=${options.keysMaxAge ?? 60}` } },
      );
    }
    if (url.pathname === "/keys") {
      const block = parseBlock(url.searchParams.get("prefix") ?? "");
      const all = [...keys.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .filter(([tn]) => blockContainsTn(block, tn))
        .flatMap(([, list]) => list);
      const size = options.pageSize ?? 1000;
      const start = Number(url.searchParams.get("cursor") ?? "0");
      const page = all.slice(start, start + size);
      const more = start + size < all.length ? { truncated: true, cursor: String(start + size) } : {};
      return Response.json(
        { keys: page, ...more },
        { headers: { "cache-control": `public, max-age=${options.keysMaxAge ?? 60}` } },
      );
    }
    const m = /^\/cps\/([^/]+)\/ppts$/.exec(url.pathname);
    if (m?.[1]) {
      let tn: CanonicalTn;
      try {
        tn = canonicalTn(decodeURIComponent(m[1]));
      } catch {
        return problem(400, "INVALID_TN");
      }
      if (request.method === "POST") {
        storeHeaders.push(request.headers);
        if (failures.n > 0) {
          failures.n--;
          return problem(failures.status, failures.code);
        }
        const text = await request.text();
        try {
          decodeEnvelope(text);
        } catch {
          return problem(400, "BLOB_SIZE");
        }
        const id = crypto.randomUUID().replace(/-/g, "");
        stored.set(tn, [...(stored.get(tn) ?? []), { id, blob: text.replace(/\s+/g, "") }]);
        return Response.json(
          { id, expires: new Date(Date.now() + 60_000).toISOString() },
          { status: 201, headers: { location: `/cps/${tn}/ppts/${id}` } },
        );
      }
      const dummies = await Promise.all(
        Array.from({ length: options.dummies ?? 2 }, async () => ({
          id: crypto.randomUUID().replace(/-/g, ""),
          blob: encodeEnvelope(await makeDummy(tn)),
        })),
      );
      return Response.json({ passports: [...(stored.get(tn) ?? []), ...dummies] });
    }
    return problem(404, "NOT_FOUND");
  };

  return {
    base,
    log,
    keys,
    stored,
    storeHeaders,
    fetch: (input, init) => handle(new Request(input, init)),
    failStores(n, status, code) {
      failures = { n, status, code };
    },
    async registerKey(tn, kid, publicKey, signer) {
      const c = canonicalTn(tn);
      const by = signer === null ? undefined : (signer ?? options.signer);
      const entry: Record<string, unknown> = {
        kty: "OKP",
        crv: "X25519",
        use: "enc",
        kid,
        x: b64u(publicKey),
        block: c,
        ...(by ? { record: await signedKeyRecord(by, publicKey, { blocks: [c] }) } : {}),
      };
      keys.set(c, [...(keys.get(c) ?? []), entry]);
      return entry;
    },
    addEntry(tn, entry) {
      const c = canonicalTn(tn);
      keys.set(c, [...(keys.get(c) ?? []), entry]);
    },
  };
}

type AsOptions = ConstructorParameters<typeof AuthenticationService>[0];

/**
 * An AS that discovers and stores through `cps`, signing as `cred` under the x5u of "alice"
 * (../helpers/x5u.ts) and trusting `trustAnchors`; `extra` adds options (cover, tokens, ...).
 */
export function fakeCpsAs(
  cps: FakeCps,
  cred: TestCredential,
  trustAnchors: AsOptions["trustAnchors"],
  extra: Partial<AsOptions> = {},
): AuthenticationService {
  return new AuthenticationService({
    credential: { privateKey: cred.privateKey, x5u: x5uUrl("alice"), chain: cred.pem },
    trustAnchors,
    discovery: new Discovery({ bootstrap: cps.base, fetch: cps.fetch }),
    fetch: cps.fetch,
    ...extra,
  });
}
