/**
 * The OpenAPI 3.1 description of the CPS API. Written by hand next to the routes; a test checks that
 * every route the app registers is described here and nothing else is.
 */
import { Hono } from "hono";
import type { AppEnv } from "../http/types.js";

const problem = { $ref: "#/components/responses/Problem" };
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
const blobText = {
  type: "string",
  description:
    "Sealed PASSporT (envelope v1, docs/wire-format.md) as base64url, 1,430 characters; whitespace is ignored.",
  pattern: "^[A-Za-z0-9_\\-\\s]+$",
};

export const openApiDocument = {
  openapi: "3.1.0",
  info: {
    title: "STIR out-of-band Call Placement Service",
    version: "1.0.0",
    description:
      "RFC 8816 CPS: stores sealed PASSporTs under the called number and returns them with dummies.",
  },
  paths: {
    "/cps/{tn}/ppts": {
      parameters: [tnParam],
      post: {
        summary: "Store one sealed PASSporT (RFC 8816 §9)",
        operationId: "storePassport",
        requestBody: { required: true, content: { "application/passport": { schema: blobText } } },
        responses: {
          "201": {
            description: "Stored until `expires`",
            headers: { Location: { schema: { type: "string" }, description: "/cps/{tn}/ppts/{id}" } },
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["id", "expires"],
                  properties: { id: idParam.schema, expires: { type: "string", format: "date-time" } },
                },
              },
            },
          },
          "400": problem,
          "413": problem,
          "415": problem,
          "429": problem,
        },
      },
      get: {
        summary: "Every live sealed PASSporT for the number plus 1-3 fresh dummies, shuffled (RFC 8816 §6.2)",
        operationId: "listPassports",
        responses: {
          "200": {
            description: "Never empty",
            content: {
              "application/json": {
                schema: {
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
                },
              },
            },
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
    "/health": {
      get: {
        summary: "Liveness",
        operationId: "health",
        responses: {
          "200": { description: "Up", content: { "application/json": { schema: { type: "object" } } } },
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
  },
  components: {
    responses: {
      Problem: {
        description: "RFC 9457 problem details with a stable `code`",
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
