/**
 * TEST ONLY: the certificate repository the integration Worker's x5u fetches reach (vitest.config.ts
 * `outboundService`), so PASSporTs and credential tokens can name their certificate by `x5u` (RFC 8225
 * §4.3, ATIS-1000096 access tokens) inside workerd, and the CPS fetches real PEM bytes through its
 * X5uFetcher (src/stir/x5u.ts), URL policy included.
 *
 * Two kinds of URL on one public-looking https host (it passes the x5u URL policy; nothing resolves it):
 * - `/{credential}.pem`: the chain (leaf first) of a serialised test PKI credential (test/helpers/pki.ts);
 * - `/chain/{b64url DER}.{b64url DER}...pem`: the chain spelled in the path itself, for a leaf a test
 *   issued inside workerd (stateless, so the Node side needs to know nothing about it). Credential
 *   tokens only: a PASSporT's x5u is held to 2048 characters.
 * - `/redirect/{credential}.pem`: a 302 to the first form (which the x5u rules must not follow).
 * Anything else on the host answers 404 (a certificate that cannot be had). Plain module with no
 * runtime imports, so both vitest.config.ts (Node) and workerd tests can load it.
 */
import type { SerialTestPki } from "./pki.js";

/** Origin of the test certificate repository. */
export const TEST_X5U_ORIGIN = "https://certs.stir-oob-test.example";

function pemOf(derBase64: readonly string[]): string {
  return derBase64
    .map(
      (b64) =>
        `-----BEGIN CERTIFICATE-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END CERTIFICATE-----\n`,
    )
    .join("");
}

function fromB64url(text: string): string {
  const std = text.replace(/-/g, "+").replace(/_/g, "/");
  return std + "=".repeat((4 - (std.length % 4)) % 4);
}

/** The x5u URL of a chain given as DER (leaf first): the `/chain/` form. */
export function chainX5u(der: readonly Uint8Array[]): string {
  const parts = der.map((d) => {
    let bin = "";
    for (const b of d) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  });
  return `${TEST_X5U_ORIGIN}/chain/${parts.join(".")}.pem`;
}

/**
 * The answer of the test certificate repository for `url`, or undefined when `url` is not on it (the
 * caller then goes on: CRLs, the network).
 */
export function x5uResponse(serial: SerialTestPki, url: string): Response | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.origin !== TEST_X5U_ORIGIN) return undefined;
  const pem = (body: string) =>
    new Response(body, {
      status: 200,
      headers: { "content-type": "application/x-pem-file", "cache-control": "max-age=300" },
    });
  // A redirect to a served chain: the x5u rules allow no redirects (src/stir/x5u.ts), so this fails.
  const redirect = /^\/redirect\/([A-Za-z]+)\.pem$/.exec(parsed.pathname);
  if (redirect?.[1] !== undefined) {
    return new Response(null, {
      status: 302,
      headers: { location: `${TEST_X5U_ORIGIN}/${redirect[1]}.pem` },
    });
  }
  const named = /^\/([A-Za-z]+)\.pem$/.exec(parsed.pathname);
  const credentials = serial.credentials as Record<string, { der: string[] } | undefined>;
  const credential = named?.[1] === undefined ? undefined : credentials[named[1]];
  if (credential !== undefined) return pem(pemOf(credential.der));
  const inline = /^\/chain\/([A-Za-z0-9_.-]+)\.pem$/.exec(parsed.pathname);
  if (inline?.[1] !== undefined) {
    const parts = inline[1].split(".").filter((p) => p !== "");
    if (parts.length > 0 && parts.length <= 8) return pem(pemOf(parts.map(fromB64url)));
  }
  return new Response("no such certificate", { status: 404 });
}
