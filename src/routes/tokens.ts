/**
 * Storage-token issuance (RFC 8816 §7.5, RFC 9474; wire format in docs/tokens.md):
 *   GET  /tokens/keys  the current and next issuer public keys, and the spend limits;
 *   POST /tokens       blind-signs a batch of blinded messages for an authenticated STIR credential.
 * The issuer sees only blinded messages: never K_temp, the token message or the final signature.
 */
import { Hono } from "hono";
import { CpsError } from "../errors.js";
import { limitBody, requireContentType } from "../http/body.js";
import { requireCredential } from "../http/credential-auth.js";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";
import { decodeBase64url, encodeBase64url } from "../stir/base64url.js";
import { KEY_ID_PATTERN } from "../stir/storage-token.js";
import { blindSign, issuerKeys } from "../tokens/issuer-keys.js";
import { chargeIssuanceQuota, quotaHolder } from "../tokens/quota.js";

/** Blinded messages per `POST /tokens`. */
export const TOKEN_BATCH_MAX = 32;
/** 32 messages of a 4096-bit key in base64url are ~22 KB. */
export const MAX_ISSUE_BODY_BYTES = 32 * 1024;
/** The credential action that may obtain tokens. */
export const ISSUE_ACTION = "tokens:issue";

export const tokenRoutes = new Hono<AppEnv>();

tokenRoutes.get("/keys", async (c) => {
  const config = c.get("config");
  const keys = await issuerKeys(config);
  c.header("Cache-Control", "public, max-age=300");
  return c.json({
    keys: keys.published(),
    limits: {
      maxUses: config.tokenMaxUses,
      maxUsesPerNumber: config.tokenMaxUsesPerNumber,
      windowSeconds: config.ttlSeconds,
      batchMax: TOKEN_BATCH_MAX,
    },
  });
});

interface IssueBody {
  keyId?: unknown;
  blindedMessages?: unknown;
}

function parseIssueBody(body: IssueBody): { keyId: string; messages: Uint8Array[] } {
  const { keyId, blindedMessages } = body ?? {};
  if (typeof keyId !== "string" || !KEY_ID_PATTERN.test(keyId) || !Array.isArray(blindedMessages)) {
    throw new CpsError("INVALID_BODY", "Send {keyId, blindedMessages: [base64url, ...]}");
  }
  if (blindedMessages.length === 0) throw new CpsError("INVALID_BODY", "blindedMessages is empty");
  if (blindedMessages.length > TOKEN_BATCH_MAX) {
    throw new CpsError("BATCH_TOO_LARGE", `At most ${TOKEN_BATCH_MAX} blinded messages per request`);
  }
  const messages = blindedMessages.map((m) => {
    if (typeof m !== "string") throw new CpsError("TOKEN_MALFORMED", "A blinded message is not base64url");
    try {
      return decodeBase64url(m);
    } catch {
      throw new CpsError("TOKEN_MALFORMED", "A blinded message is not base64url");
    }
  });
  return { keyId, messages };
}

tokenRoutes.post(
  "/",
  requireContentType("application/json"),
  limitBody(MAX_ISSUE_BODY_BYTES),
  requireCredential([ISSUE_ACTION]),
  async (c) => {
    let body: IssueBody;
    try {
      body = await c.req.json<IssueBody>();
    } catch {
      throw new CpsError("INVALID_BODY", "The body is not JSON");
    }
    const { keyId, messages } = parseIssueBody(body);
    const keys = await issuerKeys(c.get("config"));
    const key = keys.current();
    if (!key || key.id !== keyId) {
      throw new CpsError("TOKEN_UNKNOWN_KEY", "Blind for the current key of GET /tokens/keys");
    }
    for (const m of messages) {
      if (m.length !== key.modulusBytes) {
        throw new CpsError("TOKEN_MALFORMED", `A blinded message is ${key.modulusBytes} bytes`);
      }
    }
    // Charged to the holder (leaf subject + TNAuthList), not to the presented chain.
    const config = c.get("config");
    await chargeIssuanceQuota(
      c.env,
      await quotaHolder(c.get("credential")),
      key,
      keys,
      messages.length,
      config.tokenDailyQuota,
      config.ttlSeconds,
    );
    const signatures = await Promise.all(messages.map((m) => blindSign(key, m)));
    return c.json({ keyId: key.id, blindSignatures: signatures.map(encodeBase64url) });
  },
);

tokenRoutes.all("/", methodNotAllowed("POST"));
tokenRoutes.all("/keys", methodNotAllowed("GET"));
