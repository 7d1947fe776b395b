/**
 * The `passports` claim of an ATIS publish token: a SHA-256 digest binding the access JWT to the
 * request body (ATIS-1000096, ATIS-1000105, draft-wendt-stir-vesper-oob). The deployed clients do not
 * agree on what is hashed or how the digest is written, so the CPS accepts each variant they send
 * (docs/atis-api.md "The passports digest"), by exact string equality with one of:
 *
 * - A (ATIS sample client, TransNexus sti-oobs-sample): SHA-256 over the JSON text of the `passports`
 *   array (JavaScript `JSON.stringify`, no whitespace), written `sha256-` + standard base64 (RFC 4648
 *   §4) of the 32 digest bytes.
 * - B (research prototype lokingdav/jodi, its ATIS baseline): the same JSON text, but the digest is
 *   first written as 64 lower-case hex characters and *that text* is base64-encoded, after `sha256-`.
 * - C (draft-wendt-stir-vesper-oob-02 "Digest Integrity"): SHA-256 over the JCS (RFC 8785) form of the
 *   whole request body object, base64url without padding (RFC 4648 §5); with or without `sha256-`
 *   (the draft's rule has none, its examples show one).
 *
 * For A and B, two JSON texts of the array are accepted: the compact one (JSON.stringify, and the
 * prototype's `json.dumps(..., separators=(',', ':'))`) and Python's default `json.dumps` separators
 * (`", "`), since a Python client without explicit separators sends that. Both are the same strings in
 * the same order, so nothing else is gained by a forger. The padding `=` of standard base64 is
 * optional. The values are public (anyone holding the body can compute them), so the comparison is
 * exact string equality, not constant time.
 *
 * Pure code: only WebCrypto's SHA-256.
 */
import { CpsError } from "../errors.js";
import { encodeBase64, encodeBase64url } from "./base64url.js";
import { canonicalJson } from "./passport.js";

/** Which accepted form a `passports` claim took (see the module comment). */
export type DigestVariant = "A" | "B" | "C";

export const DIGEST_VARIANTS: readonly DigestVariant[] = ["A", "B", "C"];

/** The parts of a publish body a digest is computed over. */
export interface PublishBodyForDigest {
  /** The body's `passports` array, in the order sent. */
  readonly passports: readonly string[];
  /** The whole parsed body object (variant C hashes all of it, unknown members included). */
  readonly object: Readonly<Record<string, unknown>>;
}

/** Every claim value accepted for one body, each with its variant. */
export type AcceptedDigests = ReadonlyMap<string, DigestVariant>;

const PREFIX = "sha256-";
const encoder = new TextEncoder();

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** JSON texts of the array that A and B hash: compact, and Python's default `", "` separators. */
function arrayTexts(passports: readonly string[]): [compact: string, spaced: string] {
  const items = passports.map((p) => JSON.stringify(p));
  return [`[${items.join(",")}]`, `[${items.join(", ")}]`];
}

/**
 * Computes every `passports` claim value accepted for `body`. Async (SHA-256) and cheap (three
 * digests of a few KiB), so the route computes it before verifying the token and the claim check
 * itself stays synchronous, ahead of any certificate work.
 */
export async function acceptedPassportsDigests(body: PublishBodyForDigest): Promise<AcceptedDigests> {
  const [compact, spaced] = arrayTexts(body.passports);
  const [dc, ds, dj] = await Promise.all([
    sha256(compact),
    sha256(spaced),
    sha256(canonicalJson(body.object)),
  ]);
  const out = new Map<string, DigestVariant>();
  for (const d of [dc, ds]) {
    const a = encodeBase64(d);
    out.set(PREFIX + a, "A");
    out.set(PREFIX + a.replace(/=+$/, ""), "A");
    const b = encodeBase64(encoder.encode(hex(d)));
    out.set(PREFIX + b, "B");
    out.set(PREFIX + b.replace(/=+$/, ""), "B");
  }
  const c = encodeBase64url(dj);
  out.set(c, "C");
  out.set(PREFIX + c, "C");
  return out;
}

/**
 * The variant a `passports` claim matches among `accepted`; throws `ATIS_DIGEST_MISMATCH` (403) when
 * it is missing, not a string, or none of them.
 */
export function matchAcceptedDigest(claim: unknown, accepted: AcceptedDigests): DigestVariant {
  if (typeof claim !== "string") {
    throw new CpsError("ATIS_DIGEST_MISMATCH", "The token carries no passports digest");
  }
  const variant = accepted.get(claim);
  if (variant === undefined) {
    throw new CpsError("ATIS_DIGEST_MISMATCH", "The passports digest does not match the body");
  }
  return variant;
}

/**
 * Checks a token's `passports` claim against the body; returns the variant it matched.
 *
 * @example
 * const variant = await matchPassportsDigest(claims.passports, parsePublishBody(text));
 */
export async function matchPassportsDigest(
  claim: unknown,
  body: PublishBodyForDigest,
): Promise<DigestVariant> {
  if (typeof claim !== "string") return matchAcceptedDigest(claim, new Map());
  return matchAcceptedDigest(claim, await acceptedPassportsDigests(body));
}

/**
 * The `passports` claim value of one variant, as the clients that use it write it: A and B with
 * `sha256-` and padding, C without prefix (the VESPER rule). For our republisher and for tests.
 * `object` defaults to `{ passports }` (a body with nothing else).
 */
export async function passportsDigest(
  variant: DigestVariant,
  body: { readonly passports: readonly string[]; readonly object?: Readonly<Record<string, unknown>> },
): Promise<string> {
  if (variant === "C")
    return encodeBase64url(await sha256(canonicalJson(body.object ?? { passports: body.passports })));
  const digest = await sha256(arrayTexts(body.passports)[0]);
  return PREFIX + (variant === "A" ? encodeBase64(digest) : encodeBase64(encoder.encode(hex(digest))));
}
