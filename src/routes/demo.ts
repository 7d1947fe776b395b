/**
 * The /demo page's credentials (docs/web.md), LOCAL DEVELOPMENT ONLY:
 *   GET /demo/credentials      the TEST-ONLY demo credentials `npm start` made (src/dev/demo-credentials.mjs):
 *                              the demo root, and per party its numbers, chain, private key and x5u;
 *   GET /demo/certs/{name}.pem a party's chain, leaf first: what its PASSporTs' `x5u` names (RFC 8225 §4.3).
 * Both answer 404 NOT_FOUND, like any unknown path, unless DEMO_CREDENTIALS is set AND CPS_ORIGIN is
 * loopback (src/config.ts; with another origin the Worker refuses to serve at all). In production the
 * page finds nothing here and explains how to run it locally. The Worker never imports src/dev/: the
 * credentials arrive as a secret made outside it.
 */
import { Hono } from "hono";
import { CpsError } from "../errors.js";
import { methodNotAllowed, notFound } from "../http/errors.js";
import type { AppEnv } from "../http/types.js";

/** One party of the demo, as `npm start` writes it into DEMO_CREDENTIALS. */
interface DemoParty {
  subject: string;
  /** TNAuthList entries, for the page to show. */
  numbers: readonly string[];
  /** Chain, leaf first (PEM). */
  chainPem: string;
  /** The leaf's ES256 private key, PKCS#8 base64url. TEST ONLY. */
  privateKeyPkcs8: string;
}

interface DemoCredentials {
  rootPem: string;
  parties: Record<string, DemoParty>;
}

const NAME = /^[a-z][a-z0-9-]{0,31}$/;

let parsed: { raw: string; value: DemoCredentials } | undefined;

/** DEMO_CREDENTIALS as served, or null when the demo is off here. */
function demoCredentials(raw: string): DemoCredentials | null {
  if (raw === "") return null;
  if (parsed?.raw === raw) return parsed.value;
  let value: DemoCredentials;
  try {
    value = JSON.parse(raw) as DemoCredentials;
    if (typeof value.rootPem !== "string" || typeof value.parties !== "object" || value.parties === null) {
      throw new Error("shape");
    }
    for (const [name, p] of Object.entries(value.parties)) {
      if (!NAME.test(name) || typeof p.chainPem !== "string" || typeof p.privateKeyPkcs8 !== "string") {
        throw new Error("shape");
      }
    }
  } catch {
    throw new CpsError("MISCONFIGURED", "DEMO_CREDENTIALS is not what src/dev/demo-credentials.mjs writes");
  }
  parsed = { raw, value };
  return value;
}

export const demoRoutes = new Hono<AppEnv>();

demoRoutes.get("/credentials", (c) => {
  const config = c.get("config");
  const demo = demoCredentials(config.demoCredentials);
  if (!demo) return notFound();
  const parties = Object.fromEntries(
    Object.entries(demo.parties).map(([name, p]) => [
      name,
      { ...p, x5u: `${config.cpsOrigin}/demo/certs/${name}.pem` },
    ]),
  );
  return c.json({ testOnly: true, cps: config.cpsOrigin, rootPem: demo.rootPem, parties });
});
demoRoutes.all("/credentials", methodNotAllowed("GET"));

demoRoutes.get("/certs/:file", (c) => {
  const demo = demoCredentials(c.get("config").demoCredentials);
  const file = c.req.param("file");
  const name = file.endsWith(".pem") ? file.slice(0, -4) : "";
  const party = demo && NAME.test(name) && Object.hasOwn(demo.parties, name) ? demo.parties[name] : undefined;
  if (!party) return notFound();
  return c.body(party.chainPem, 200, { "Content-Type": "application/pem-certificate-chain" });
});
demoRoutes.all("/certs/:file", methodNotAllowed("GET"));
