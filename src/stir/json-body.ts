/**
 * The first check of a JSON request body (ATIS publish, feedback report): it parses and is an object.
 * Pure code; 400 `INVALID_BODY` otherwise.
 */
import { CpsError } from "../errors.js";

/** The body's object; `INVALID_BODY` when it is not JSON or not a JSON object (an array, null, ...). */
export function parseJsonObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new CpsError("INVALID_BODY", "The body is not JSON", { cause });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new CpsError("INVALID_BODY", "The body is not a JSON object");
  }
  return value as Record<string, unknown>;
}
