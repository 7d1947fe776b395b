/**
 * How failures become answers (src/http/errors.ts), inside workerd: Durable Object infrastructure
 * failures (an object overloaded, restarting, unreachable) are 503 UNAVAILABLE with Retry-After, which
 * clients retry; anything else unexpected is a 500 without a stack trace.
 *
 * The runtime's overload cannot be provoked on demand here, so the thrown errors carry the flags the
 * Workers runtime documents for errors from a Durable Object stub (`overloaded`, `retryable`,
 * `remote`); the mapping is what is under test.
 */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { CpsError, type CpsErrorCode, ERROR_STATUS, problemResponse } from "../../src/errors.js";
import { errorToResponse } from "../../src/http/errors.js";

function flagged(flags: Record<string, boolean>): Error {
  return Object.assign(new Error("Durable Object is overloaded. Too many requests queued."), flags);
}

async function answerTo(err: unknown) {
  const app = new Hono();
  app.get("/", () => {
    throw err;
  });
  app.onError(errorToResponse);
  const res = await app.request("https://cps.example.com/");
  const text = await res.text();
  return { res, text, body: JSON.parse(text) as { code: string; status: number } };
}

describe("errorToResponse", () => {
  it.each([
    ["overloaded", 503, "UNAVAILABLE", "2", flagged({ overloaded: true })],
    ["retryable (object restarting or unreachable)", 503, "UNAVAILABLE", "1", flagged({ retryable: true })],
    // Thrown by our own object code: a bug there, not the platform being busy.
    ["retryable but remote", 500, "INTERNAL", null, flagged({ retryable: true, remote: true })],
    ["a plain Error", 500, "INTERNAL", null, new Error("boom at line 3")],
  ])("%s: %i %s", async (_name, status, code, retryAfter, err) => {
    const { res, text, body } = await answerTo(err);
    expect(res.status).toBe(status);
    expect(body).toMatchObject({ status, code });
    expect(res.headers.get("Content-Type")).toBe("application/problem+json");
    expect(res.headers.get("Retry-After")).toBe(retryAfter);
    // Never the library's message, never a stack.
    expect(text).not.toMatch(/overloaded|boom|at line|\n\s+at /);
  });
});

describe("adversary #16: every 429 (and 503) answer carries Retry-After", () => {
  const limited = (Object.keys(ERROR_STATUS) as CpsErrorCode[]).filter(
    (code) => ERROR_STATUS[code] === 429 || ERROR_STATUS[code] === 503,
  );

  it("finds the 429 codes (the walk over the status table works)", () => {
    for (const code of ["QUEUE_FULL", "TOKEN_SPENT", "TOKEN_RATE_LIMITED", "ISSUANCE_QUOTA"]) {
      expect(limited).toContain(code);
    }
  });

  it.each(limited)("%s without a computed wait still has Retry-After (seconds)", (code) => {
    const res = problemResponse(new CpsError(code, "limited"));
    expect(res.headers.get("Retry-After")).toMatch(/^[1-9][0-9]*$/);
  });

  it("a computed wait is kept, rounded up to whole seconds", () => {
    const res = problemResponse(new CpsError("QUEUE_FULL", "full", { retryAfter: 12.2 }));
    expect(res.headers.get("Retry-After")).toBe("13");
  });
});
