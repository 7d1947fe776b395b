/**
 * Issues an ATIS access JWT (ATIS-1000096, ATIS-1000105, draft-wendt-stir-vesper-oob): ES256, `typ`
 * JWT, the signer's certificate by `x5u` or `x5c`; claims `iat`, `aud`, `jti` (a UUID), `action`,
 * `orig: {tn}`, `dest: {tn: [..]}`, and as asked `exp`, `spc`, `iss`, `sub` and the `passports` digest
 * of the body (atis-digest.ts, variant A unless another is asked for). For our republisher
 * (src/federation) and for tests; the verifying side is credential-token.ts + atis-claims.ts.
 */
import type { AtisAction } from "./atis-claims.js";
import { type DigestVariant, passportsDigest } from "./atis-digest.js";
import { signCredentialJwt } from "./credential-token.js";

export interface IssueAtisTokenOptions {
  /** The signer's STIR certificate key (ECDSA P-256). */
  readonly privateKey: CryptoKey;
  /** Certificate URL; exactly one of `x5u` and `x5c`. */
  readonly x5u?: string;
  /** Certificate chain, leaf first, DER (sent as standard base64, RFC 7515 §4.1.6). */
  readonly x5c?: readonly Uint8Array[];
  /** The CPS: its host name (what ATIS and VESPER clients send) or its origin. */
  readonly audience: string;
  readonly action: AtisAction;
  /** Canonical ORIG and DEST, as in the path. */
  readonly orig: string;
  readonly dest: string;
  /** ATIS-1000105 path SPC (also what the signer's certificate must list). */
  readonly spc?: string;
  readonly iss?: string;
  readonly sub?: string;
  /** The body's `passports` array (publish, republish): its digest becomes the `passports` claim. */
  readonly passports?: readonly string[];
  /** Variant of that digest (default A, the ATIS sample client's). */
  readonly digestVariant?: DigestVariant;
  /** The whole body object, when it has more than `passports` (variant C hashes all of it). */
  readonly body?: Readonly<Record<string, unknown>>;
  /** Seconds since the epoch; at most `iat + 60` (ATIS-1000105). */
  readonly exp?: number;
  /** Seconds since the epoch (default: clock). */
  readonly now?: number;
  /** Default: a random UUID (ATIS-1000096). */
  readonly jti?: string;
}

/**
 * Signs an ATIS access JWT; returns the compact JWS.
 *
 * @example
 * const token = await issueAtisToken({ privateKey, x5c, audience: "cps-b.example", action: "republish",
 *   orig, dest, spc: "709J", iss: "709J", passports, exp: now + 15 });
 * fetch(`${peer}/passports/${dest}/${orig}`, { method: "POST", headers: { Authorization: `Bearer ${token}`,
 *   "Content-Type": "application/json" }, body: JSON.stringify({ passports }) });
 */
export async function issueAtisToken(options: IssueAtisTokenOptions): Promise<string> {
  const claims: Record<string, unknown> = {
    iat: options.now ?? Math.floor(Date.now() / 1000),
    jti: options.jti ?? crypto.randomUUID(),
    action: options.action,
    aud: options.audience,
    orig: { tn: options.orig },
    dest: { tn: [options.dest] },
  };
  if (options.exp !== undefined) claims.exp = options.exp;
  if (options.spc !== undefined) claims.spc = options.spc;
  if (options.iss !== undefined) claims.iss = options.iss;
  if (options.sub !== undefined) claims.sub = options.sub;
  if (options.passports !== undefined) {
    claims.passports = await passportsDigest(options.digestVariant ?? "A", {
      passports: options.passports,
      object: options.body ?? { passports: options.passports },
    });
  }
  return signCredentialJwt(options, claims);
}
