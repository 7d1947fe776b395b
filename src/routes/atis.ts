/**
 * The ATIS out-of-band APIs beside the RFC 8816 API (docs/atis-api.md):
 * - `POST`/`GET /passports/{DEST}/{ORIG}` (ATIS-1000096, draft-wendt-stir-vesper-oob): publish (token
 *   action `publish`, or `republish` from a peer CPS) and retrieve (`retrieve`);
 * - `POST`/`GET /passports/{SPC}/{DEST}/{ORIG}` (ATIS-1000105): the same, the token's `spc` = the
 *   path's SPC, retrieval also by agreement between SPCs (ATIS_AGREEMENTS).
 *
 * Unlike the RFC 8816 queue, the CPS sees these PASSporTs in plaintext (the APIs require it;
 * docs/threat-model.md), so it verifies every one before storing it and serves them only to a
 * credential covering the called number or an agreed partner. ATIS_API "off" answers these paths like
 * an unknown path, before anything is parsed.
 *
 * Order of checks on publish, so the same error wins when several are wrong: ATIS on -> path (400) ->
 * media type (415) -> size (413) -> JSON and shape (400) -> Idempotency-Key shape (400) -> bearer
 * token (401) -> token claims against path and body (src/stir/atis-claims.ts) -> certificate chain and
 * signature -> rate limit (429) -> coverage and peer (403) -> Idempotency-Key use (422, or the stored
 * answer) -> every PASSporT (400/403) -> `jti` spent (401) -> store (429) -> re-publish to the peers ->
 * bridge to the RFC 8816 queue -> 201. Errors answer in the ATIS JSON format (src/http/atis-errors.ts).
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { AtisPublishResult } from "../durable-objects/atis-store.js";
import { CpsError } from "../errors.js";
import { bridgeToRfc8816 } from "../federation/bridge.js";
import { enqueueRepublish } from "../federation/republish.js";
import {
  type AtisAccess,
  idempotencyKey,
  idempotencyScope,
  passportKeyResolver,
  requestFingerprint,
  verifyAtisToken,
} from "../http/atis-auth.js";
import { atisOnError } from "../http/atis-errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { notFound } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import {
  ATIS_PUBLISH_ACTIONS,
  ATIS_RETRIEVE_ACTIONS,
  coversDestination,
  isAtisSpc,
} from "../stir/atis-claims.js";
import { acceptedPassportsDigests } from "../stir/atis-digest.js";
import { parsePublishBody, verifyPublishedPassport } from "../stir/atis-passports.js";
import { DEFAULT_FRESHNESS_SECONDS } from "../stir/passport.js";
import { type CanonicalTn, canonicalTn } from "../stir/tn.js";
import { coversSpc } from "../stir/tnauthlist.js";
import { atisStore } from "../storage/objects.js";

/** Largest publish body, bytes: 10 PASSporTs of 8 KiB and the JSON around them. */
export const MAX_ATIS_BODY_BYTES = 64 * 1024;
/** The answer to a publish (VESPER), also the stored answer of an Idempotency-Key. */
export const ATIS_CREATED = { status: 201, message: "Created" } as const;

const PATHS = ["/:dest/:orig", "/:spc/:dest/:orig"] as const;

interface AtisPath {
  /** The ATIS-1000105 SPC, absent on the ATIS-1000096 path. */
  spc?: string;
  dest: CanonicalTn;
  orig: CanonicalTn;
  /** The path with canonical numbers: what an Idempotency-Key's fingerprint covers. */
  canonical: string;
}

/** The path's SPC (400 INVALID_SPC), DEST and ORIG (400 INVALID_TN), in that order. */
function atisPath(c: Context<AppEnv>): AtisPath {
  const spc = c.req.param("spc");
  if (spc !== undefined && !isAtisSpc(spc)) {
    throw new CpsError("INVALID_SPC", "The SPC is 1 to 32 letters and digits");
  }
  const dest = canonicalTn(c.req.param("dest") ?? "");
  const orig = canonicalTn(c.req.param("orig") ?? "");
  const canonical = `/passports/${spc === undefined ? "" : `${spc}/`}${dest}/${orig}`;
  return { ...(spc === undefined ? {} : { spc }), dest, orig, canonical };
}

/** Checks the path before the body guards, so a bad path wins over a bad body. */
function checkPath(): MiddlewareHandler<AppEnv> {
  return async function checkPath(c, next) {
    atisPath(c);
    await next();
  };
}

/** Seconds since the epoch. */
function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function created(c: Context<AppEnv>): Response {
  c.header("Cache-Control", "no-store");
  return c.json(ATIS_CREATED, 201);
}

export const atisRoutes = new Hono<AppEnv>();

// Every error of these paths in the ATIS JSON format (VESPER: `status`, `message`; ours: `code`).
// Thrown, not returned, so the operator's figures count each under its code (src/http/metrics.ts).
atisRoutes.onError((err, c) => {
  const res = atisOnError(err, c);
  if (res.status === 405) res.headers.set("Allow", "GET, POST");
  return res;
});

// ATIS_API "off": exactly an unknown path (the app's 404 problem), before anything is parsed.
atisRoutes.use("*", async (c, next) => {
  if (!c.get("config").atisApi) return notFound();
  await next();
});

for (const path of PATHS) {
  atisRoutes.post(
    path,
    checkPath(),
    requireContentType("application/json"),
    limitBody(MAX_ATIS_BODY_BYTES),
    async (c) => {
      const config = c.get("config");
      const { spc, dest, orig, canonical } = atisPath(c);
      // parsePublishBody also refuses bodies nested deeper than 32 levels (hashing them would recurse).
      const body = parsePublishBody(await c.req.text());
      const key = idempotencyKey(c.req.header("idempotency-key"));
      const digests = await acceptedPassportsDigests(body);
      const store = atisStore(c.env, dest);
      const now = nowSeconds();
      let repeat = false;
      let idempotency: { scope: string; fingerprint: string } | undefined;
      let firstIat = Number.POSITIVE_INFINITY;

      const beforeSpend = async (access: AtisAccess): Promise<boolean | undefined> => {
        // ATIS-1000096 mesh: only a configured peer CPS may republish here.
        if (
          access.claims.action === "republish" &&
          !config.atisPeers.some((peer) => coversSpc(access.verified.tnAuthList, peer.spc))
        ) {
          throw new CpsError("ATIS_PEER_UNKNOWN", "The credential is not one of a peer CPS");
        }
        if (key !== undefined) {
          idempotency = {
            scope: idempotencyScope(access.holder, key),
            fingerprint: await requestFingerprint("POST", canonical, body.object),
          };
          const state = await store.idempotencyState(idempotency);
          if (state === "mismatch") {
            throw new CpsError(
              "IDEMPOTENCY_KEY_MISMATCH",
              "This Idempotency-Key was used for another request",
            );
          }
          if (state === "repeat") {
            // The same publish again (its answer was lost): the stored answer, nothing re-checked or
            // spent, so even a resend with the jti the first one spent gets it.
            repeat = true;
            return false;
          }
        }
        // Every PASSporT verified before anything is spent or stored: the CPS never serves a forged one.
        const resolveKey = await passportKeyResolver(config, now);
        for (const passport of body.passports) {
          const decoded = await verifyPublishedPassport(passport, { dest, orig, now, resolveKey });
          firstIat = Math.min(firstIat, decoded.claims.iat);
        }
        return undefined;
      };

      const access = await verifyAtisToken(
        c.env,
        config,
        c.req.header("authorization"),
        { actions: ATIS_PUBLISH_ACTIONS, dest, orig, ...(spc === undefined ? {} : { spc }), digests },
        beforeSpend,
      );
      if (repeat) return created(c);

      // Deleted at the first of: the CPS policy time, the publisher's exp (ATIS-1000105), and the end
      // of the freshness window of its oldest PASSporT (RFC 8224 §6.2.2: nobody may use it after).
      const exp = access.verified.exp;
      const expiresAt = Math.min(
        Date.now() + config.ttlSeconds * 1000,
        exp === undefined ? Number.POSITIVE_INFINITY : exp * 1000,
        (firstIat + DEFAULT_FRESHNESS_SECONDS) * 1000,
      );
      const passports = [...new Set(body.passports)];
      const result: AtisPublishResult = await store.publish({
        orig,
        publisherSpc: access.publisherSpc,
        passports,
        expiresAt,
        ...(idempotency === undefined ? {} : { idempotency }),
      });
      if (!result.ok) {
        if (result.code === "QUEUE_FULL") {
          throw new CpsError("QUEUE_FULL", "Too many live PASSporTs for this number", {
            retryAfter: result.retryAfterSeconds,
          });
        }
        throw new CpsError("IDEMPOTENCY_KEY_MISMATCH", "This Idempotency-Key was used for another request");
      }
      // Only what this publish stored anew goes on: a resend (or a peer's copy of ours) of live
      // PASSporTs must not be republished or sealed into the RFC 8816 queue a second time.
      const added = result.added;
      if (added.length === 0) return created(c);
      // A publish is passed on to the peers (never a republish: no loops), awaited so an answered
      // publish is queued; then sealed to the number's registered keys (RFC 8816 verifiers find it).
      if (access.claims.action === "publish") {
        try {
          await enqueueRepublish(c.env, config, { dest, orig, passports: added, expiresAt });
        } catch (err) {
          // Not answered 201, so nothing of it stays: its rows and its Idempotency-Key record go, and
          // the client's retry (same key or none) is done in full, queued this time.
          await store.withdraw(orig, access.publisherSpc, added);
          if (idempotency !== undefined) await store.forgetIdempotency(idempotency);
          throw err;
        }
      }
      await bridgeToRfc8816(c.env, dest, added);
      return created(c);
    },
  );

  atisRoutes.get(path, async (c) => {
    const config = c.get("config");
    const { spc, dest, orig } = atisPath(c);
    let publisherSpcs: readonly string[] | null = null;
    await verifyAtisToken(
      c.env,
      config,
      c.req.header("authorization"),
      { actions: ATIS_RETRIEVE_ACTIONS, dest, orig, ...(spc === undefined ? {} : { spc }) },
      async (access) => {
        if (coversDestination(access.verified.tnAuthList, dest, config.spcNumberBlocks)) return undefined;
        if (spc === undefined) {
          throw new CpsError("CERT_NOT_AUTHORISED", "The certificate's TNAuthList does not cover DEST");
        }
        // ATIS-1000105: without the number, what the path SPC (the token's spc, which the certificate
        // lists) and its agreed partners published.
        const partners = config.atisAgreements.get(spc);
        if (partners === undefined) {
          throw new CpsError("ATIS_NOT_PARTNER", "The SPC has no agreement to retrieve through this CPS");
        }
        publisherSpcs = [spc, ...partners];
        return undefined;
      },
    );
    const passports = await atisStore(c.env, dest).retrieve(orig, publisherSpcs);
    if (passports.length === 0) throw new CpsError("NOT_FOUND", "No PASSporT for these numbers");
    c.header("Cache-Control", "no-store");
    return c.json({ passports });
  });

  atisRoutes.all(path, () => {
    throw new CpsError("METHOD_NOT_ALLOWED", "Method not allowed on this resource");
  });
}
