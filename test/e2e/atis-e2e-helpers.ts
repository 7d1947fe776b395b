/**
 * Shared by the ATIS federation and bridge e2e tests (test/e2e/atis-federation.test.ts,
 * atis-bridge.test.ts): a certificate repository on loopback serving x5u PEM files over plain http
 * (the CPS fetches it with ALLOW_LOOPBACK_X5U=true, local development only), a SHAKEN PASSporT signer,
 * and ATIS publish/retrieve requests signed with src/stir/atis-token.ts. TEST ONLY keys.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { AtisAction } from "../../src/stir/atis-claims.js";
import { issueAtisToken } from "../../src/stir/atis-token.js";
import { createPassport } from "../../src/stir/passport.js";

/** A tiny certificate repository: `serve(name, pem)` makes `{url}/{name}.pem` answer with the PEM. */
export interface CertRepository {
  readonly url: string;
  serve(name: string, pem: string): string;
  close(): Promise<void>;
}

export async function startCertRepository(): Promise<CertRepository> {
  const files = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const pem = files.get(req.url ?? "");
    if (req.method !== "GET" || pem === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/pem-certificate-chain" }).end(pem);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    serve(name, pem) {
      files.set(`/${name}.pem`, pem);
      return `${url}/${name}.pem`;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A SHAKEN PASSporT (RFC 8588) from `orig` to `dest`, signed now with the key of the x5u certificate. */
export function shakenPassport(
  privateKey: CryptoKey,
  x5u: string,
  orig: string,
  dest: string,
  iat = Math.floor(Date.now() / 1000),
): Promise<string> {
  return createPassport(
    {
      x5u,
      ppt: "shaken",
      claims: { attest: "A", dest: { tn: [dest] }, iat, orig: { tn: orig }, origid: crypto.randomUUID() },
    },
    privateKey,
  );
}

export interface Signer {
  readonly privateKey: CryptoKey;
  readonly der: readonly Uint8Array[];
}

/** `Authorization` for one ATIS request to the CPS at `origin` (aud = its host, as ATIS clients send). */
export async function atisAuth(
  signer: Signer,
  origin: string,
  action: AtisAction,
  dest: string,
  orig: string,
  extra: { passports?: readonly string[]; spc?: string; iss?: string } = {},
): Promise<string> {
  const token = await issueAtisToken({
    privateKey: signer.privateKey,
    x5c: signer.der,
    audience: new URL(origin).host,
    action,
    dest,
    orig,
    ...extra,
  });
  return `Bearer ${token}`;
}

/** POST /passports/{DEST}/{ORIG} with `action` (publish, or republish as a peer CPS would). */
export async function atisPublish(
  origin: string,
  signer: Signer,
  dest: string,
  orig: string,
  passports: readonly string[],
  action: "publish" | "republish" = "publish",
  extra: { spc?: string; iss?: string } = {},
): Promise<Response> {
  return fetch(`${origin}/passports/${dest}/${orig}`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Authorization: await atisAuth(signer, origin, action, dest, orig, { passports, ...extra }),
    },
    body: JSON.stringify({ passports }),
  });
}

/** GET /passports/{DEST}/{ORIG}: the status and, on 200, the PASSporTs. */
export async function atisRetrieve(
  origin: string,
  signer: Signer,
  dest: string,
  orig: string,
): Promise<{ status: number; passports?: string[]; code?: string }> {
  const res = await fetch(`${origin}/passports/${dest}/${orig}`, {
    headers: { Authorization: await atisAuth(signer, origin, "retrieve", dest, orig) },
  });
  const body = (await res.json()) as { passports?: string[]; code?: string };
  return { status: res.status, ...body };
}

/** Polls `probe` every `intervalMs` until it returns a value, or resolves undefined at `deadline` (ms). */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined>,
  deadline: number,
  intervalMs = 250,
): Promise<T | undefined> {
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
