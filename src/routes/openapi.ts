/**
 * The OpenAPI 3.1 description of the CPS API. Written by hand next to the routes; a test checks that
 * every route the app registers is described here and nothing else is.
 */
import { Hono } from "hono";
import { methodNotAllowed } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";

const problem = { $ref: "#/components/responses/Problem" };
/** A JSON request or answer body: the content map of one application/json schema. */
const json = (schema: object) => ({ "application/json": { schema } });
/** The required JSON request body of a POST or PUT. */
const jsonBody = (schema: object) => ({ required: true, content: json(schema) });
const tnParam = {
  name: "tn",
  in: "path",
  required: true,
  description:
    "Called number: E.164 digits, optionally with a leading '+' or '.', '-', ' ' between digit groups (RFC 8816 §9 dotted form). Canonicalised to 3-15 digits.",
  schema: { type: "string", examples: ["22225552222", "2.222.555.2222", "+1 111 555 1111"] },
};
const idParam = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string", pattern: "^[0-9a-f]{32}$" },
};
const blockParam = {
  name: "block",
  in: "path",
  required: true,
  description:
    "A number block: digits then one lowercase 'x' per open digit, 1 to 4 open (at most 10,000 numbers of 3-15 digits)",
  schema: { type: "string", pattern: "^[0-9]+x{1,4}$", examples: ["120255501xx", "1202555xxxx"] },
};
const blobText = {
  type: "string",
  description:
    "Sealed PASSporT (envelope v1, docs/wire-format.md) as base64url, 1,430 characters; whitespace is ignored.",
  pattern: "^[A-Za-z0-9_\\-\\s]+$",
};

// ---- The ATIS out-of-band APIs (src/routes/atis.ts, docs/atis-api.md) ----
const atisError = { $ref: "#/components/responses/AtisError" };
const atisTnDescription =
  "E.164 digits, optionally with a leading '+' (percent-encoded as %2B) or '.', '-', ' ' between digit groups; canonicalised to 3-15 digits (400 INVALID_TN otherwise)";
const atisDestParam = {
  name: "dest",
  in: "path",
  required: true,
  description: `Called number (DEST). ${atisTnDescription}`,
  schema: { type: "string", examples: ["12025550123"] },
};
const atisOrigParam = {
  name: "orig",
  in: "path",
  required: true,
  description: `Calling number (ORIG). ${atisTnDescription}`,
  schema: { type: "string", examples: ["12155551212"] },
};
const atisSpcParam = {
  name: "spc",
  in: "path",
  required: true,
  description:
    "Service provider code (ATIS-1000105): the access token's `spc` must equal it and the signer's certificate list it (400 INVALID_SPC when malformed)",
  schema: { type: "string", pattern: "^[A-Za-z0-9]{1,32}$", examples: ["1234"] },
};
const fullFormPassport = {
  type: "string",
  maxLength: 8192,
  pattern: "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
  description: "A PASSporT in full form (RFC 8225): header.payload.signature, base64url",
};
const atisPassportsBody = {
  type: "object",
  required: ["passports"],
  properties: { passports: { type: "array", minItems: 1, maxItems: 10, items: fullFormPassport } },
};

/** The publish and retrieve operations of one ATIS path form (`sfx` tells their operationIds apart). */
function atisOperations(sfx: string, form: string) {
  return {
    post: {
      summary: `Publish PASSporTs for a call (${form}): token action publish, or republish from a peer CPS`,
      description:
        "Every PASSporT is verified before it is stored (ES256 with its x5u certificate, chained to the trust anchors and not revoked; orig.tn = ORIG, DEST in dest.tn; iat within 60 s; ppt none or shaken). Kept until the first of: PASSPORT_TTL_SECONDS, the token's exp, iat + 60 s of its oldest PASSporT. Re-published to the configured peers (ATIS_PEERS) and sealed to DEST's registered keys into the RFC 8816 queue. The token's `passports` claim is the SHA-256 digest of the body in one of the accepted forms (docs/atis-api.md).",
      operationId: `atisPublish${sfx}`,
      security: [{ atisAccessToken: [] }],
      parameters: [
        {
          name: "Idempotency-Key",
          in: "header",
          required: false,
          description:
            "1-255 printable ASCII characters. The same key and request from the same credential within 600 s gets the original 201 and stores nothing; the same key with another request: 422 IDEMPOTENCY_KEY_MISMATCH",
          schema: { type: "string", pattern: "^[\\x21-\\x7e]{1,255}$" },
        },
      ],
      requestBody: jsonBody(atisPassportsBody),
      responses: {
        "201": {
          description: "Stored",
          content: json({
            type: "object",
            required: ["status", "message"],
            properties: { status: { const: 201 }, message: { const: "Created" } },
          }),
        },
        "400": {
          ...atisError,
          description:
            "INVALID_TN, INVALID_SPC, INVALID_BODY, ATIS_PASSPORTS_INVALID, ATIS_PASSPORT_MISMATCH, ATIS_EXP_TOO_LONG, IDEMPOTENCY_KEY_INVALID, PASSPORT_*, X5U_FETCH_FAILED, CERT_MALFORMED",
        },
        "401": atisError,
        "403": {
          ...atisError,
          description:
            "AUTH_ACTION, ATIS_CLAIM_MISMATCH, ATIS_DIGEST_MISMATCH, ATIS_PEER_UNKNOWN, CERT_NOT_AUTHORISED, CERT_* (chain, expiry, revocation)",
        },
        "413": atisError,
        "415": atisError,
        "422": atisError,
        "429": { ...atisError, description: "ATIS_RATE_LIMITED (per credential), QUEUE_FULL" },
      },
    },
    get: {
      summary: `Retrieve the PASSporTs published for a call (${form}): token action retrieve`,
      description:
        form === "ATIS-1000105"
          ? "Every live one when the signer's certificate covers DEST; otherwise those published by the path SPC and its agreed partners (ATIS_AGREEMENTS), and 403 ATIS_NOT_PARTNER when the SPC has no agreement."
          : "Only for a signer whose certificate covers DEST (a TN or range entry, or an SPC mapped to it by SPC_NUMBER_BLOCKS).",
      operationId: `atisRetrieve${sfx}`,
      security: [{ atisAccessToken: [] }],
      responses: {
        "200": {
          description: "Live PASSporTs in full form, oldest first, each once",
          content: json(atisPassportsBody),
        },
        "400": atisError,
        "401": atisError,
        "403": atisError,
        "404": { ...atisError, description: "NOT_FOUND: nothing live for these numbers" },
        "429": atisError,
      },
    },
  };
}

export const openApiDocument = {
  openapi: "3.1.0",
  info: {
    title: "STIR out-of-band Call Placement Service",
    version: "1.0.0",
    description:
      "RFC 8816 CPS: stores sealed PASSporTs under the called number and returns them with dummies. A path below answers a method it does not list with 405 METHOD_NOT_ALLOWED and `Allow` (the methods listed for it; HEAD is served wherever GET is); an unknown path with 404 NOT_FOUND. Every 429 and 503 carries `Retry-After` (seconds). The ATIS out-of-band paths (/passports/...) answer errors in the ATIS JSON format (AtisError) instead of problem+json, and with ATIS_API off answer like an unknown path.",
  },
  paths: {
    "/cps/{tn}/ppts": {
      parameters: [tnParam],
      post: {
        summary: "Store one sealed PASSporT (RFC 8816 §9), paid with a storage token (§7.5, docs/tokens.md)",
        operationId: "storePassport",
        parameters: [
          {
            name: "CPS-Token",
            in: "header",
            required: true,
            description:
              "Storage token: v1.<keyId>.<b64u nonce>.<b64u K_temp SPKI>.<b64u RSA-PSS signature> (RFC 9474; docs/tokens.md). Optional only when ALLOW_UNTOKENED_STORES is on (local development).",
            schema: { type: "string", pattern: "^v1\\.[A-Za-z0-9_-]{1,64}(\\.[A-Za-z0-9_-]+){3}$" },
          },
          {
            name: "CPS-Token-Signature",
            in: "header",
            required: true,
            description:
              "base64url K_temp signature (Ed25519, or ECDSA P-256/SHA-256 r||s) over 'stir-oob store v1' || 0x00 || u8(len(tn)) || tn || blob bytes",
            schema: { type: "string", pattern: "^[A-Za-z0-9_-]{86}$" },
          },
          {
            name: "CPS-Feedback-Tag",
            in: "header",
            required: false,
            description:
              "The blob's feedback tag: base64url of HPKE Export(ctx, 'stir-oob feedback tag v1' || SHA-256(blob), 32) of its sender context, taken after sealing (RFC 8816 §7.5 feedback, docs/tokens.md \"Feedback\"). Kept with the token that paid, so a report of this blob can revoke it; ignored on an untokened store.",
            schema: { type: "string", pattern: "^[A-Za-z0-9_-]{43}$" },
          },
        ],
        requestBody: { required: true, content: { "application/passport": { schema: blobText } } },
        responses: {
          "201": {
            description: "Stored until `expires`",
            headers: { Location: { schema: { type: "string" }, description: "/cps/{tn}/ppts/{id}" } },
            content: json({
              type: "object",
              required: ["id", "expires"],
              properties: { id: idParam.schema, expires: { type: "string", format: "date-time" } },
            }),
          },
          "400": problem,
          "401": problem,
          "403": problem,
          "413": problem,
          "415": problem,
          "429": problem,
        },
      },
      get: {
        summary:
          "Every live sealed PASSporT for the number plus its live decoys (at least one), shuffled (RFC 8816 §6.2)",
        operationId: "listPassports",
        responses: {
          "200": {
            description: "Never empty",
            content: json({
              type: "object",
              required: ["passports"],
              properties: {
                passports: {
                  type: "array",
                  minItems: 1,
                  items: {
                    type: "object",
                    required: ["id", "blob"],
                    properties: { id: idParam.schema, blob: blobText },
                  },
                },
              },
            }),
          },
          "400": problem,
        },
      },
    },
    "/cps/{tn}/ppts/{id}": {
      parameters: [tnParam, idParam],
      get: {
        summary: "One stored sealed PASSporT (a trailing slash is accepted, as RFC 8816 §9 shows)",
        operationId: "getPassport",
        responses: {
          "200": { description: "The blob", content: { "application/passport": { schema: blobText } } },
          "400": problem,
          "404": problem,
        },
      },
    },
    "/cps/{tn}/subscribe": {
      parameters: [tnParam],
      get: {
        summary:
          "Subscribe (WebSocket) to the number: every live blob and the number's live decoys, then each new blob and each decoy at its birth (RFC 8816 §5.5; docs/push-and-blocks.md)",
        description:
          "Anonymous, or the callee authenticated with a STIR credential token (action push:subscribe) covering the number: authenticated subscribers have reserved capacity and evict an anonymous one when the number is full (close 4029).",
        operationId: "subscribePassports",
        security: [{}, { stirCredential: [] }],
        responses: {
          "101": {
            description:
              'WebSocket; text frames {"type":"passport","id","tn","blob"} alike for real blobs and decoys; the CPS also sends "mark <32 hex>", which the client answers "ack <the same hex>" (a client more than 4 Mi characters behind its last answered mark is closed with 4008); send "ping" for "pong"',
          },
          "400": problem,
          "401": problem,
          "403": problem,
          "409": {
            description:
              "NUMBER_SHARDED: a hot number (HOT_NUMBERS) is spread over several objects; subscribe to a block containing it (/cps/blocks/{block}/subscribe), which sees them all",
            content: { "application/problem+json": {} },
          },
          "426": problem,
          "429": problem,
        },
      },
    },
    "/cps/blocks/{block}/ppts": {
      parameters: [blockParam],
      get: {
        summary:
          "Every live sealed PASSporT for the numbers of a block plus decoys (at least one), shuffled (RFC 8816 §6.2)",
        operationId: "listBlockPassports",
        responses: {
          "200": {
            description: "Never empty; `truncated: true` when more than 10,000 blobs are live",
            content: json({
              type: "object",
              required: ["passports"],
              properties: {
                passports: {
                  type: "array",
                  minItems: 1,
                  items: {
                    type: "object",
                    required: ["id", "tn", "blob"],
                    properties: { id: idParam.schema, tn: { type: "string" }, blob: blobText },
                  },
                },
                truncated: { type: "boolean" },
              },
            }),
          },
          "400": problem,
        },
      },
    },
    "/cps/blocks/{block}/subscribe": {
      parameters: [blockParam],
      get: {
        summary: "Subscribe (WebSocket) to a block of numbers, as /cps/{tn}/subscribe (RFC 8816 §5.5)",
        description:
          "Authenticated subscribers' credential must cover every number of the block (action push:subscribe).",
        operationId: "subscribeBlock",
        security: [{}, { stirCredential: [] }],
        responses: {
          "101": { description: "WebSocket, frames, marks and acknowledgements as for one number" },
          "400": problem,
          "401": problem,
          "403": problem,
          "426": problem,
          "429": problem,
        },
      },
    },
    "/keys/{tn}": {
      parameters: [
        {
          name: "tn",
          in: "path",
          required: true,
          description:
            "A number (GET, PUT, DELETE); for PUT the first block of the signed record (a number or a block: `1202555xxxx`, one 'x' per open digit); for DELETE a number, a block or, with `count`, the first number of a range (docs/key-directory.md).",
          schema: { type: "string", examples: ["12025550123", "120255501xx"] },
        },
      ],
      get: {
        summary:
          "Every live X25519 encryption key for the number, including keys of blocks containing it (RFC 8816 §11)",
        operationId: "getKeys",
        responses: {
          "200": {
            description:
              "JWK Set (OKP/X25519, `use: enc`, extra members label, exp, block, and `record`: the signed key record as registered, the only member a client trusts); publicly cacheable",
            content: { "application/jwk-set+json": { schema: { $ref: "#/components/schemas/JwkSet" } } },
          },
          "400": problem,
          "421": problem,
        },
      },
      put: {
        summary:
          "Register a public encryption key as a signed key record (STIR credential token, action keys:put; the record signed by the same holder)",
        description:
          'The record is a JWS (ES256, typ stir-key-record+jwt, x5c or x5u) over {v, jwk, blocks, label, iat, nbf, exp}, signed by a STIR certificate covering every block; {tn} must name blocks[0]. Stored and served unchanged. Format: docs/key-directory.md "Signed key records".',
        operationId: "putKey",
        security: [{ stirCredential: [] }],
        requestBody: jsonBody({
          type: "object",
          required: ["record"],
          additionalProperties: false,
          properties: {
            record: {
              type: "string",
              maxLength: 16384,
              pattern: "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
              description: "Signed key record, JWS compact serialization (RFC 7515)",
            },
          },
        }),
        responses: {
          "201": { description: "Registered: kid (RFC 7638 thumbprint), label, exp, blocks (the record's)" },
          "400": {
            ...problem,
            description:
              "KEY_RECORD_REQUIRED (unsigned body), KEY_RECORD_INVALID, KEY_RECORD_EXPIRED, KEY_RECORD_MISMATCH ({tn} is not blocks[0]), INVALID_BODY, X5U_FETCH_FAILED, CERT_MALFORMED",
          },
          "401": problem,
          "403": {
            ...problem,
            description:
              "KEY_RECORD_SIGNER (record and token of different holders), CERT_NOT_AUTHORISED, CERT_UNTRUSTED, CERT_EXPIRED, CERT_NOT_YET_VALID, CERT_CHAIN_INVALID, CERT_NO_TNAUTHLIST, CERT_REVOKED, AUTH_ACTION",
          },
          "409": problem,
          "413": problem,
          "415": problem,
          "421": problem,
        },
      },
      delete: {
        summary: "Remove keys this certificate holder registered (all, or `kid`) (action keys:delete)",
        operationId: "deleteKeys",
        security: [{ stirCredential: [] }],
        parameters: [
          { name: "kid", in: "query", required: false, schema: { type: "string" } },
          { name: "count", in: "query", required: false, schema: { type: "integer", minimum: 1 } },
        ],
        responses: {
          "200": { description: "`{ removed }`" },
          "400": problem,
          "401": problem,
          "403": problem,
          "404": problem,
          "421": problem,
        },
      },
    },
    "/keys": {
      get: {
        summary:
          "Prefetch every live key of a bounded number block (RFC 8816 §11 mitigation), in pages (docs/key-directory.md)",
        operationId: "prefetchKeys",
        parameters: [
          {
            name: "prefix",
            in: "query",
            required: true,
            description:
              "A block: digits then one 'x' per open digit, at most KEYS_PREFETCH_MAX_OPEN_DIGITS of them; spelt like {tn} ('+', and '.', '-' or ' ' between groups; '+' percent-encoded as %2B), 'X' as 'x'",
            schema: { type: "string", examples: ["1202555xxxx", "+1-202-555-xxxx"] },
          },
          {
            name: "limit",
            in: "query",
            required: false,
            description:
              "Most directory entries of the block in this page (each one holder's 1-5 keys for one block)",
            schema: { type: "integer", minimum: 1, maximum: 1000, default: 1000 },
          },
          {
            name: "cursor",
            in: "query",
            required: false,
            description:
              "The `cursor` of the previous page of the same prefix, as received; continues after it. Anything else: 400 INVALID_PAGE",
            schema: { type: "string", pattern: "^[A-Za-z0-9_-]{1,2048}$" },
          },
        ],
        responses: {
          "200": {
            description:
              "JWK Set of one page. The first page also carries the keys of blocks containing the prefix. `truncated: true` and `cursor` when the block has more: ask again with `cursor`. Over all pages every key comes once; a page with `cursor` is never empty unless its entries expired while it was read",
            content: { "application/jwk-set+json": { schema: { $ref: "#/components/schemas/JwkSet" } } },
          },
          "400": problem,
          "421": problem,
        },
      },
    },
    "/.well-known/stir-oob": {
      get: {
        summary: "CPS discovery: which CPS and key directory serve the number (RFC 8816 §10), longest prefix",
        operationId: "discover",
        parameters: [{ name: "tn", in: "query", required: true, schema: { type: "string" } }],
        responses: {
          "200": {
            description: "The record; `Cache-Control: public, max-age=ttl`",
            content: json({
              type: "object",
              required: ["prefix", "cps", "keys", "ttl", "source"],
              properties: {
                prefix: { type: "string" },
                cps: { type: "string", format: "uri" },
                cpses: {
                  type: "array",
                  minItems: 2,
                  maxItems: 8,
                  items: { type: "string", format: "uri" },
                  description:
                    "Every CPS serving the number, cps first; only when there are several (RFC 8816 §10): store to and retrieve from each",
                },
                keys: { type: "string", format: "uri" },
                ttl: { type: "integer" },
                source: { enum: ["served", "provisioned", "registered"] },
              },
            }),
          },
          "400": problem,
          "404": problem,
        },
      },
    },
    "/discovery/{block}": {
      parameters: [
        {
          name: "block",
          in: "path",
          required: true,
          schema: { type: "string", examples: ["1415555xxxx", "14155550123"] },
        },
      ],
      put: {
        summary: "Register the CPS serving a block (action discovery:put)",
        operationId: "putDiscoveryRecord",
        security: [{ stirCredential: [] }],
        requestBody: jsonBody({
          type: "object",
          required: ["cps"],
          properties: {
            cps: {
              oneOf: [
                { type: "string", format: "uri" },
                {
                  type: "array",
                  minItems: 1,
                  maxItems: 8,
                  uniqueItems: true,
                  items: { type: "string", format: "uri" },
                },
              ],
              description: "The CPS, or every CPS serving the block (first = the answer's cps)",
            },
            keys: { type: "string", format: "uri" },
            ttl: { type: "integer", minimum: 0, maximum: 86400, default: 300 },
            lifetime: { type: "integer", minimum: 60, maximum: 34560000, default: 2592000 },
          },
        }),
        responses: {
          "201": { description: "Registered" },
          "400": problem,
          "401": problem,
          "403": problem,
          "415": problem,
        },
      },
      delete: {
        summary: "Remove a record this certificate holder registered (action discovery:delete)",
        operationId: "deleteDiscoveryRecord",
        security: [{ stirCredential: [] }],
        responses: {
          "204": { description: "Removed" },
          "400": problem,
          "401": problem,
          "403": problem,
          "404": problem,
        },
      },
    },
    "/tokens/keys": {
      get: {
        summary: "Storage-token issuer public keys (current and next) and spend limits (docs/tokens.md)",
        operationId: "getTokenKeys",
        responses: {
          "200": {
            description:
              "Keys (RSABSSA-SHA384-PSS-Randomized, SPKI DER base64url) and limits; publicly cacheable",
            content: json({
              type: "object",
              required: ["keys", "limits"],
              properties: {
                keys: {
                  type: "array",
                  items: {
                    type: "object",
                    required: ["id", "suite", "publicKey", "notBefore", "notAfter", "status"],
                    properties: {
                      id: { type: "string" },
                      suite: { const: "RSABSSA-SHA384-PSS-Randomized" },
                      publicKey: { type: "string" },
                      notBefore: { type: "string", format: "date-time" },
                      notAfter: { type: "string", format: "date-time" },
                      status: { enum: ["current", "next"] },
                    },
                  },
                },
                limits: {
                  type: "object",
                  properties: {
                    maxUses: { type: "integer" },
                    maxUsesPerNumber: { type: "integer" },
                    windowSeconds: { type: "integer" },
                    batchMax: { type: "integer" },
                  },
                },
              },
            }),
          },
        },
      },
    },
    "/tokens": {
      post: {
        summary: "Blind-sign a batch of blinded token messages (RFC 9474; action tokens:issue; daily quota)",
        operationId: "issueTokens",
        security: [{ stirCredential: [] }],
        requestBody: jsonBody({
          type: "object",
          required: ["keyId", "blindedMessages"],
          properties: {
            keyId: { type: "string", description: "The current key of GET /tokens/keys" },
            blindedMessages: {
              type: "array",
              minItems: 1,
              maxItems: 32,
              items: { type: "string", description: "base64url, modulus length" },
            },
          },
        }),
        responses: {
          "200": {
            description: "One blind signature per blinded message, in order",
            content: json({
              type: "object",
              required: ["keyId", "blindSignatures"],
              properties: {
                keyId: { type: "string" },
                blindSignatures: { type: "array", items: { type: "string" } },
              },
            }),
          },
          "400": problem,
          "401": problem,
          "403": problem,
          "413": problem,
          "415": problem,
          "429": problem,
        },
      },
    },
    "/feedback": {
      post: {
        summary:
          'Report a blob whose PASSporT is bogus (RFC 8816 §7.5 feedback, docs/tokens.md "Feedback"): the CPS opens it with the reported KEM shared secret, judges the PASSporT at its store time and revokes the token that paid for it (its further stores 403 TOKEN_REVOKED). No credential; send it through the OHTTP relay',
        operationId: "reportBogusPassport",
        requestBody: jsonBody({
          type: "object",
          required: ["tn", "blob", "secret"],
          properties: {
            tn: { type: "string", description: "The number the blob was stored under" },
            blob: blobText,
            secret: {
              type: "string",
              pattern: "^[A-Za-z0-9_-]{43}$",
              description: "base64url of the blob's HPKE KEM shared secret (32 bytes)",
            },
          },
        }),
        responses: {
          "200": {
            description:
              "Bogus: `revoked` tokens newly revoked (0 when a report already had: `already`), `reason` the first check it failed",
            content: json({
              type: "object",
              required: ["revoked", "already"],
              properties: {
                revoked: { type: "integer" },
                already: { type: "integer" },
                reason: {
                  enum: ["MALFORMED", "DEST_MISMATCH", "STALE", "UNTRUSTED", "NOT_AUTHORISED", "SIGNATURE"],
                },
              },
            }),
          },
          "400": problem,
          "403": problem,
          "404": problem,
          "413": problem,
          "415": problem,
          "422": problem,
          "429": problem,
        },
      },
    },
    "/.well-known/ohttp-gateway": {
      get: {
        summary:
          "Oblivious HTTP key configuration (RFC 9458 §3.2, RFC 9540 §4): every gateway key live now. 404 when the gateway is off (no OHTTP_KEYS)",
        operationId: "ohttpKeys",
        responses: {
          "200": {
            description:
              "Key configurations, each prefixed by its 2-byte length; `Cache-Control: public, max-age=3600`",
            content: { "application/ohttp-keys": { schema: { type: "string", format: "binary" } } },
          },
          "404": problem,
          "503": problem,
        },
      },
      post: {
        summary:
          "Oblivious HTTP gateway (RFC 9458 §5): an Encapsulated Request of a Binary HTTP request (RFC 9292) for this CPS, run through the same API; answered 200 with the Encapsulated Response whatever the inner status (docs/ohttp.md)",
        operationId: "ohttpGateway",
        parameters: [
          {
            name: "OHTTP-Relay-Token",
            in: "header",
            required: false,
            description:
              "The relay's token, added by the relay (never the client's). Required when the operator sets OHTTP_RELAYS (the relays the gateway accepts, by the SHA-256 of their tokens); without OHTTP_RELAYS the gateway accepts any sender (docs/ohttp.md \"Which relays may send\")",
            schema: { type: "string", minLength: 1 },
          },
        ],
        requestBody: {
          required: true,
          content: { "message/ohttp-req": { schema: { type: "string", format: "binary" } } },
        },
        responses: {
          "200": {
            description:
              "Encapsulated Response (RFC 9458 §4.4) of the inner answer, padded (docs/ohttp.md). Inner refusals are inside: 421 NOT_SERVED (another origin), 403 OHTTP_REFUSED (the gateway itself, an upgrade), 400 OHTTP_MALFORMED",
            content: { "message/ohttp-res": { schema: { type: "string", format: "binary" } } },
          },
          "400": {
            description:
              "Unknown key id, unsupported suite or a request that does not decrypt: problem type `https://iana.org/assignments/http-problem-types#ohttp-key` (RFC 9458 §5.3), code OHTTP_KEY; or a malformed encapsulation (OHTTP_MALFORMED)",
            content: { "application/problem+json": {} },
          },
          "403": {
            description:
              "OHTTP_RELAY_UNKNOWN: OHTTP_RELAYS is set and the sender's OHTTP-Relay-Token is missing or not a listed relay's; refused before decapsulation",
            content: { "application/problem+json": {} },
          },
          "404": problem,
          "413": problem,
          "415": problem,
          "503": problem,
        },
      },
    },
    "/metrics": {
      get: {
        summary:
          "The operator's figures as OpenMetrics 1.0 text (docs/metrics.md): requests by route pattern, latency histograms, error codes, stores, retrievals, tokens, live blobs, push subscribers. Aggregates only.",
        operationId: "metrics",
        security: [{ operatorToken: [] }],
        responses: {
          "200": {
            description: "OpenMetrics text ending `# EOF`",
            content: { "application/openmetrics-text; version=1.0.0; charset=utf-8": {} },
          },
          "401": {
            ...problem,
            description:
              "Missing, malformed or wrong operator token (AUTH_MISSING, AUTH_MALFORMED, AUTH_INVALID)",
          },
          "404": {
            ...problem,
            description: "No operator credential configured (METRICS_TOKEN_SHA256 unset)",
          },
        },
      },
    },
    "/console/data": {
      get: {
        summary:
          "The operator console's time series (5-second intervals, last 15 minutes) and per-route latency (docs/metrics.md)",
        operationId: "consoleData",
        security: [{ operatorToken: [] }],
        responses: {
          "200": {
            description: "Time series",
            content: json({ type: "object" }),
          },
          "401": { ...problem, description: "Missing, malformed or wrong operator token" },
          "404": {
            ...problem,
            description: "No operator credential configured (METRICS_TOKEN_SHA256 unset)",
          },
        },
      },
    },
    "/passports/{dest}/{orig}": {
      parameters: [atisDestParam, atisOrigParam],
      ...atisOperations("", "ATIS-1000096, VESPER"),
    },
    "/passports/{spc}/{dest}/{orig}": {
      parameters: [atisSpcParam, atisDestParam, atisOrigParam],
      ...atisOperations("Spc", "ATIS-1000105"),
    },
    "/health": {
      get: {
        summary: "Liveness",
        operationId: "health",
        responses: {
          "200": { description: "Up", content: json({ type: "object" }) },
        },
      },
    },
    "/openapi.json": {
      get: {
        summary: "This document",
        operationId: "openapi",
        responses: { "200": { description: "OpenAPI 3.1", content: { "application/json": {} } } },
      },
    },
    "/demo/credentials": {
      get: {
        summary: "LOCAL DEVELOPMENT ONLY: the /demo page's TEST-ONLY credentials (docs/web.md)",
        description:
          "Served only when `npm start` set DEMO_CREDENTIALS and CPS_ORIGIN is loopback; 404 NOT_FOUND everywhere else, like an unknown path. Private keys of a throwaway demo CA, never of a real credential.",
        operationId: "demoCredentials",
        responses: {
          "200": {
            description: "Demo root and parties",
            content: json({ type: "object" }),
          },
          "404": problem,
        },
      },
    },
    "/demo/certs/{file}": {
      parameters: [
        {
          name: "file",
          in: "path",
          required: true,
          description: "`<party>.pem`",
          schema: { type: "string", pattern: "^[a-z][a-z0-9-]{0,31}\\.pem$" },
        },
      ],
      get: {
        summary: "LOCAL DEVELOPMENT ONLY: a demo party's certificate chain, what its PASSporTs' x5u names",
        operationId: "demoCertificate",
        responses: {
          "200": {
            description: "PEM chain, leaf first",
            content: { "application/pem-certificate-chain": {} },
          },
          "404": problem,
        },
      },
    },
  },
  components: {
    securitySchemes: {
      operatorToken: {
        type: "http",
        scheme: "bearer",
        description: "The operator's token; its SHA-256 is the METRICS_TOKEN_SHA256 secret (docs/metrics.md)",
      },
      stirCredential: {
        type: "http",
        scheme: "bearer",
        bearerFormat: "ES256 JWT with x5u/x5c STIR certificate (docs/passport-and-credentials.md)",
      },
      atisAccessToken: {
        type: "http",
        scheme: "bearer",
        bearerFormat:
          "ATIS access JWT: ES256 with x5u or x5c STIR certificate; iat, aud (this CPS's host or origin), jti (single use), action, orig, dest, and spc (ATIS-1000105 paths), exp (at most iat + 60), iss, sub, passports (publish) (docs/atis-api.md)",
      },
    },
    schemas: {
      JwkSet: {
        type: "object",
        required: ["keys"],
        properties: {
          keys: {
            type: "array",
            items: {
              type: "object",
              required: ["kty", "crv", "x", "kid", "use", "label", "exp", "block"],
              properties: {
                kty: { const: "OKP" },
                crv: { const: "X25519" },
                x: { type: "string" },
                kid: { type: "string" },
                use: { const: "enc" },
                label: { type: "string" },
                exp: { type: "integer" },
                block: { type: "string" },
                record: {
                  type: "string",
                  description:
                    "The signed key record (JWS) as registered; verify it and use only its payload. Absent on keys registered before signed records (unsigned: clients skip them by default)",
                },
              },
            },
          },
          truncated: { type: "boolean", description: "Prefetch only: more pages follow" },
          cursor: { type: "string", description: "Prefetch only, with truncated: continue with ?cursor=" },
        },
      },
    },
    responses: {
      AtisError: {
        description:
          "ATIS routes: JSON error with `status` and `message` (what ATIS and VESPER clients read) and the stable `code`, `type`, `title` of the problems elsewhere",
        headers: {
          "Retry-After": {
            description: "Seconds; on every 429 and 503 answer",
            schema: { type: "integer", minimum: 0 },
          },
          Allow: { description: "On 405: GET, POST", schema: { type: "string" } },
        },
        content: json({
          type: "object",
          required: ["status", "message", "code", "type", "title"],
          properties: {
            status: { type: "integer" },
            message: { type: "string" },
            code: { type: "string" },
            type: { type: "string" },
            title: { type: "string" },
          },
        }),
      },
      Problem: {
        description: "RFC 9457 problem details with a stable `code`",
        headers: {
          "Retry-After": {
            description: "Seconds; on every 429 and 503 answer",
            schema: { type: "integer", minimum: 0 },
          },
          Allow: { description: "On 405: the methods the path serves", schema: { type: "string" } },
        },
        content: {
          "application/problem+json": {
            schema: {
              type: "object",
              required: ["type", "title", "status", "code"],
              properties: {
                type: { type: "string" },
                title: { type: "string" },
                status: { type: "integer" },
                code: { type: "string" },
              },
            },
          },
        },
      },
    },
  },
} as const;

export const openApiRoutes = new Hono<AppEnv>();

openApiRoutes.get("/", (c) => {
  c.header("Cache-Control", "public, max-age=300");
  return c.json(openApiDocument);
});
openApiRoutes.all("/", methodNotAllowed("GET"));
