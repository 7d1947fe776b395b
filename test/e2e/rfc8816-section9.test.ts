/**
 * RFC 8816 §9 ("Example HTTPS Interface to the CPS") end to end: the real CPS under `wrangler dev`
 * on workerd, spoken to over HTTP exactly as §9 shows, with persisted local state.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { decodeEnvelope, ENVELOPE_TEXT_LENGTH, openPassport } from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type ListBody, RFC8816_EXAMPLE_PASSPORT, sealedFor } from "../helpers/cps.js";

/** §9 writes the called number dotted; the CPS files it under its canonical digits. */
const SECTION9_TN = "2.222.555.2222";
const CANONICAL = canonicalTn(SECTION9_TN);

/**
 * §9 stores "having acquired any token (per Section 6.1)"; token issuance is exercised elsewhere, so
 * this run uses the local-development switch that accepts stores without one.
 */
const VARS = { ALLOW_UNTOKENED_STORES: "true" };

/** §9 prints the encrypted PASSporT folded over 64-character lines; we send it that way. */
function fold(text: string, width = 64): string {
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += width) lines.push(text.slice(i, i + width));
  return `${lines.join("\r\n")}\r\n`;
}

async function list(base: string, tn: string): Promise<ListBody> {
  const res = await fetch(`${base}/cps/${tn}/ppts`);
  expect(res.status).toBe(200);
  return (await res.json()) as ListBody;
}

describe("RFC 8816 §9 over HTTP against `wrangler dev`", () => {
  let stateDir: string;
  let server: LocalServer;
  let callee: Awaited<ReturnType<typeof sealedFor>>["callee"];
  let sealedText: string;
  let location: string;
  let storedId: string;
  let expires: number;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "cps-e2e-"));
    server = await startLocalServer({ persistTo: stateDir, vars: VARS });
    ({ callee, text: sealedText } = await sealedFor(SECTION9_TN));
  });

  afterAll(async () => {
    await server?.stop();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it("§9 store: POST /cps/2.222.555.2222/ppts (application/passport, folded) -> 201 + Location", async () => {
    const res = await fetch(`${server.url}/cps/${SECTION9_TN}/ppts`, {
      method: "POST",
      headers: { "Content-Type": "application/passport" },
      body: fold(sealedText),
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { id: string; expires: string };
    location = res.headers.get("Location") ?? "";
    expect(location).toBe(`/cps/${CANONICAL}/ppts/${body.id}`);
    storedId = body.id;
    expires = Date.parse(body.expires);
    expect(expires).toBeGreaterThan(Date.now());
  });

  it("§9 retrieve: GET /cps/2.222.555.2222/ppts lists it among >= 2 entries (real + dummies)", async () => {
    const { passports } = await list(server.url, SECTION9_TN);
    expect(passports.length).toBeGreaterThanOrEqual(2);
    expect(passports.map((p) => p.id)).toContain(storedId);
    expect(passports.find((p) => p.id === storedId)?.blob).toBe(sealedText);
    for (const p of passports) expect(p.blob).toHaveLength(ENVELOPE_TEXT_LENGTH);
  });

  it("§9 fetch: GET the Location with a trailing slash -> application/passport that opens to the PASSporT", async () => {
    const res = await fetch(`${server.url}${location}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/passport\b/);
    expect(res.headers.get("Link")).toContain(`/cps/${CANONICAL}/ppts`);
    const text = await res.text();
    expect(text).toBe(sealedText);
    const opened = await openPassport(callee.keyPair, CANONICAL, decodeEnvelope(text));
    expect(opened).toBe(RFC8816_EXAMPLE_PASSPORT);
  });

  it("a number nobody called still gets at least one blob, of the same length, opening for no one", async () => {
    const empty = "1.555.000.0001";
    const { passports } = await list(server.url, empty);
    expect(passports.length).toBeGreaterThanOrEqual(1);
    for (const p of passports) {
      expect(p.blob).toHaveLength(ENVELOPE_TEXT_LENGTH);
      await expect(
        openPassport(callee.keyPair, canonicalTn(empty), decodeEnvelope(p.blob)),
      ).rejects.toThrow();
    }
  });

  it.each([
    ["GET", "not-a-number"],
    ["GET", "12"],
    ["POST", "2.222.555.2222x"],
  ])("%s with a bad telephone number %j -> 400 problem+json INVALID_TN", async (method, tn) => {
    const res = await fetch(`${server.url}/cps/${tn}/ppts`, {
      method,
      ...(method === "POST" ? { headers: { "Content-Type": "application/passport" }, body: sealedText } : {}),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/problem\+json\b/);
    const problem = (await res.json()) as { status: number; code: string };
    expect(problem).toMatchObject({ status: 400, code: "INVALID_TN" });
  });

  it("state survives a restart on the same persist dir: the blob is still listed within its TTL", async () => {
    await server.stop();
    server = await startLocalServer({ persistTo: stateDir, vars: VARS });
    expect(Date.now()).toBeLessThan(expires); // still within the 60 s TTL, so it must be there
    const { passports } = await list(server.url, SECTION9_TN);
    expect(passports.map((p) => p.id)).toContain(storedId);
    const res = await fetch(`${server.url}${location}`);
    expect(res.status).toBe(200);
    expect(await openPassport(callee.keyPair, CANONICAL, decodeEnvelope(await res.text()))).toBe(
      RFC8816_EXAMPLE_PASSPORT,
    );
  });
});
