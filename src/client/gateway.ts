/**
 * Gateway placement services (RFC 8816 §8.3, use cases §5.3 and §5.4).
 *
 * `Gateway.storeIdentity`: a SIP-to-PSTN gateway takes the PASSporT(s) out of a call's Identity
 * header(s) (RFC 8224), performs §8.1 step 3 (discover the CPS and every key of the destination,
 * keeping only keys whose signed record verifies, as the AS does), seals each PASSporT to each key,
 * pays and stores. It does not create PASSporTs and does not verify
 * them (it is not a VS); it refuses compact-form PASSporTs, since the CPS copy MUST be full form.
 *
 * `ReverseGateway.identityFor`: the PSTN-to-SIP gateway of §5.3 subcase 1 retrieves and verifies the
 * PASSporTs for the called number and writes an Identity header for the new INVITE from each one
 * that passed (only full form, §5.3: "to avoid discrepancies with the Date header field value").
 */
import { formatIdentityHeader, parseIdentityHeaders } from "../stir/identity-header.js";
import { decodePassport } from "../stir/passport.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import type { FetchLike } from "./cps-client.js";
import type { Discovery } from "./discovery.js";
import { StirClientError } from "./errors.js";
import { KeyRecordCheck, type KeyRecordCheckOptions, type SkippedKey } from "./key-records.js";
import { clock, ms, type PlacementTimings, type StoredCopy, storeAtDestination } from "./placement.js";
import { type OhttpRelay, type RelayTransportOptions, relayFor } from "./relay.js";
import type { StoreTokenSource } from "./store-tokens.js";
import type { CallVerification, VerificationService } from "./vs.js";

export interface GatewayOptions extends RelayTransportOptions, Omit<KeyRecordCheckOptions, "fetch"> {
  readonly discovery: Discovery;
  readonly tokens?: StoreTokenSource;
  readonly fetch?: FetchLike;
}

export interface GatewayStoreResult {
  readonly to: CanonicalTn;
  readonly cps: string;
  /** The full-form PASSporTs taken from the Identity header(s), in order. */
  readonly passports: readonly string[];
  readonly stored: readonly StoredCopy[];
  /** Keys the directory served for the number that failed the record check, with the reason. */
  readonly skipped: readonly SkippedKey[];
  readonly timings: PlacementTimings & { discover: number; total: number };
}

/**
 * A gateway that moves in-band PASSporTs out of band.
 *
 * @example
 * const gw = new Gateway({ discovery, tokens: wallet, trustAnchors: [root] });
 * await gw.storeIdentity({ identity: invite.headers.getAll("Identity"), to: "+2 222 555 2222" });
 */
export class Gateway {
  readonly #options: GatewayOptions;
  /** Stores go through this relay when set (docs/ohttp.md); one key cache for every call. */
  readonly #relay: OhttpRelay | undefined;
  /** Which served keys may be sealed to (signed records, docs/key-directory.md). */
  readonly #check: KeyRecordCheck;

  constructor(options: GatewayOptions) {
    if (!options.validator && !options.trustAnchors?.length) {
      throw new TypeError("A gateway needs trust anchors or a validator for key records");
    }
    this.#options = options;
    this.#relay = relayFor(options.relay, options.fetch);
    this.#check = new KeyRecordCheck(options);
  }

  /**
   * Stores the PASSporT(s) of a call's Identity header values. `to` defaults to the first `dest.tn` of
   * the first PASSporT (normally it is the request's called number). Throws `IDENTITY_HEADER_MALFORMED`,
   * `PASSPORT_*` (undecodable), `StirClientError` COMPACT_FORM / NO_KEYS / NO_VALID_KEYS / STORE_FAILED.
   * @example
   * const { stored } = await gw.storeIdentity({ identity: "eyJ...;info=<https://cert.example/c.pem>;ppt=shaken" });
   */
  async storeIdentity(input: {
    identity: string | readonly string[];
    to?: string;
  }): Promise<GatewayStoreResult> {
    const start = clock();
    const headers = parseIdentityHeaders(input.identity);
    const passports: string[] = [];
    let firstDest: string | undefined;
    for (const h of headers) {
      if (h.passport.split(".")[1] === "") {
        throw new StirClientError(
          "COMPACT_FORM",
          "A compact-form PASSporT cannot be stored at a CPS (RFC 8816 §8.1)",
        );
      }
      // Shape check only (the gateway is no VS): a CPS copy that no VS could ever use helps nobody.
      const { claims } = decodePassport(h.passport, { supportedPpt: h.ppt ? [h.ppt] : ["shaken"] });
      firstDest ??= claims.dest.tn?.[0];
      if (!passports.includes(h.passport)) passports.push(h.passport);
    }
    const toRaw = input.to ?? firstDest;
    if (toRaw === undefined) throw new StirClientError("NO_KEYS", "No called number given or found in dest");
    const to = canonicalTn(toRaw);

    const { cps, skipped, stored, timings, discover } = await storeAtDestination({
      discovery: this.#options.discovery,
      check: this.#check,
      to,
      nowSeconds: Date.now() / 1000,
      passports,
      tokens: this.#options.tokens,
      fetch: this.#options.fetch,
      relay: this.#relay,
      requireRelay: this.#options.requireRelay,
    });
    return { to, cps, passports, stored, skipped, timings: { ...timings, discover, total: ms(start) } };
  }
}

export interface ReverseGatewayResult {
  readonly verification: CallVerification;
  /** One Identity header value per PASSporT that passed §8.2 (empty unless the verdict is verified). */
  readonly identity: readonly string[];
}

/**
 * The PSTN-to-SIP gateway of §5.3 subcase 1: fetch, verify, and write Identity headers.
 *
 * @example
 * const rgw = new ReverseGateway(vs);
 * const { identity } = await rgw.identityFor({ to: "+2 222 555 2222", calling: "+1 111 555 1111" });
 * for (const value of identity) invite.headers.append("Identity", value);
 */
export class ReverseGateway {
  constructor(readonly vs: VerificationService) {}

  async identityFor(input: { to: string; calling: string }): Promise<ReverseGatewayResult> {
    const verification = await this.vs.verifyCall(input);
    const identity = verification.candidates
      .filter((c) => c.ok && c.x5u !== undefined)
      .map((c) => {
        const { header } = decodePassport(c.passport);
        return formatIdentityHeader({
          passport: c.passport,
          info: c.x5u ?? "",
          alg: "ES256",
          ...(header.ppt === undefined ? {} : { ppt: header.ppt }),
        });
      });
    return { verification, identity };
  }
}
