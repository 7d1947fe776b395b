/**
 * `stir-oob ca`: a DEMO / TEST certificate authority (src/stir/test-pki.ts). Nothing it makes chains
 * to a real STI-PA; every subject says "TEST ONLY".
 *
 *   ca init [--issue name=+number ...] [--force]   root + intermediate, optional credentials
 *   ca issue <name> --tn +number [--tn ...]        a STIR credential whose TNAuthList lists the numbers
 *   ca show                                        what the home holds
 */
import "reflect-metadata";
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import { certificatePublicKey, parseCertificate } from "../stir/cert-parse.js";
import { createTestPki, issueTestLeaf, type TestCertificate } from "../stir/test-pki.js";
import { canonicalTn } from "../stir/tn.js";
import {
  bold,
  dim,
  EXIT,
  type GlobalOptions,
  green,
  loadGlobals,
  parse,
  printJson,
  showTn,
  UsageError,
  updateConfig,
  writeFileSafe,
} from "./common.js";
import { importSigningKey, loadCredentials, pkcs8Pem, ROOT_PEM } from "./home.js";

export const CA_HELP = `stir-oob ca: a DEMO certificate authority for local runs (TEST ONLY, never for real calls)

Usage:
  stir-oob ca init [--issue NAME=+NUMBER ...] [--force]
  stir-oob ca issue NAME --tn +NUMBER [--tn +NUMBER ...]
  stir-oob ca show

init   makes a root and an intermediate CA in <home>/ca/ (root certificate: <home>/ca/root.pem,
       which \`npm start\` gives the local CPS as TRUST_ANCHORS_PEM and which the VS trusts).
issue  makes a STIR credential (RFC 8226 certificate with a TNAuthList naming the numbers) in
       <home>/credentials/NAME/; its x5u is https://certs.stir-oob.test/NAME.pem, which the CLI's
       VS resolves from the local file (config.json "x5u" map): a real VS fetches x5u over https.

Options:
  --issue NAME=+NUMBER   (init) also issue a credential; repeat for several
  --tn +NUMBER           (issue) a number the credential speaks for; repeat for several
  --force                (init) replace an existing CA
  --home DIR             state directory (default ./.stir-oob, env STIR_OOB_HOME)
  --json                 machine-readable output
`;

/** The x5u a demo credential advertises; `.test` (RFC 2606) never resolves, so it can't leak out. */
export function demoX5u(name: string): string {
  return `https://certs.stir-oob.test/${name}.pem`;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function loadIntermediate(home: string): Promise<TestCertificate> {
  try {
    const certificate = parseCertificate(await readFile(join(home, "ca/intermediate.pem"), "utf8"));
    return {
      certificate,
      keys: {
        privateKey: await importSigningKey(await readFile(join(home, "ca/intermediate.key.pem"), "utf8")),
        publicKey: await certificatePublicKey(certificate),
      },
    };
  } catch {
    throw new UsageError(`No demo CA in ${join(home, "ca")}: run \`stir-oob ca init\` first`);
  }
}

async function issue(g: GlobalOptions, name: string, numbers: string[]) {
  if (!NAME.test(name)) throw new UsageError("A credential name is 1-32 of a-z, 0-9, _ and -");
  if (numbers.length === 0) throw new UsageError("Give at least one --tn for the credential");
  const tns = numbers.map((n) => canonicalTn(n));
  const intermediate = await loadIntermediate(g.home);
  const cred = await issueTestLeaf(
    intermediate,
    { subject: `${name} (stir-oob demo)`, tnAuthList: tns.map((tn) => ({ type: "one", tn })) },
    new Date(),
  );
  const dir = join(g.home, "credentials", name);
  const x5u = demoX5u(name);
  await writeFileSafe(join(dir, "chain.pem"), `${cred.pem}\n`);
  await writeFileSafe(
    join(dir, "key.pem"),
    `${pkcs8Pem((await crypto.subtle.exportKey("pkcs8", cred.privateKey)) as ArrayBuffer)}\n`,
    true,
  );
  await writeFileSafe(join(dir, "meta.json"), `${JSON.stringify({ x5u, numbers: tns }, null, 2)}\n`);
  await updateConfig(g.home, (c) => ({
    ...c,
    x5u: { ...(c.x5u ?? {}), [x5u]: `credentials/${name}/chain.pem` },
  }));
  return { name, numbers: tns, x5u, chain: join(dir, "chain.pem") };
}

export async function caCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    issue: { type: "string", multiple: true },
    tn: { type: "string", multiple: true },
    force: { type: "boolean", default: false },
  });
  const [sub, ...rest] = positionals;
  if (values.help || sub === undefined) {
    process.stdout.write(CA_HELP);
    return values.help ? EXIT.OK : EXIT.USAGE;
  }
  const g = await loadGlobals(values);

  if (sub === "init") {
    const rootPath = join(g.home, ROOT_PEM);
    const had = await exists(rootPath);
    if (had && !values.force) {
      if (!values.issue?.length) throw new UsageError(`${rootPath} exists; use --force to replace the CA`);
    } else {
      const pki = await createTestPki();
      const pem = (c: TestCertificate) => c.certificate.toString("pem");
      const key = async (c: TestCertificate) =>
        `${pkcs8Pem((await crypto.subtle.exportKey("pkcs8", c.keys.privateKey)) as ArrayBuffer)}\n`;
      await writeFileSafe(rootPath, `${pem(pki.root)}\n`);
      await writeFileSafe(join(g.home, "ca/root.key.pem"), await key(pki.root), true);
      await writeFileSafe(join(g.home, "ca/intermediate.pem"), `${pem(pki.intermediate)}\n`);
      await writeFileSafe(join(g.home, "ca/intermediate.key.pem"), await key(pki.intermediate), true);
      await updateConfig(g.home, (c) => ({ ...c, cps: c.cps ?? g.cps }));
    }
    const issued = [];
    for (const spec of values.issue ?? []) {
      const eq = spec.indexOf("=");
      if (eq < 1) throw new UsageError(`--issue takes NAME=+NUMBER, got ${JSON.stringify(spec)}`);
      issued.push(await issue(g, spec.slice(0, eq), spec.slice(eq + 1).split(",")));
    }
    if (g.json) printJson({ root: rootPath, created: !had || values.force, issued });
    else {
      console.log(
        `${green("✔")} demo CA ${had && !values.force ? "kept" : "created"}: ${rootPath} ${dim("(TEST ONLY)")}`,
      );
      for (const i of issued)
        console.log(`${green("✔")} credential ${bold(i.name)} for ${i.numbers.map(showTn).join(", ")}`);
      console.log(dim(`  The local CPS must trust ${rootPath}: \`npm start\` reads it from there.`));
    }
    return EXIT.OK;
  }

  if (sub === "issue") {
    const [name] = rest;
    if (!name) throw new UsageError("ca issue NAME --tn +NUMBER");
    const out = await issue(g, name, values.tn ?? []);
    if (g.json) printJson(out);
    else
      console.log(
        `${green("✔")} credential ${bold(out.name)} for ${out.numbers.map(showTn).join(", ")} (x5u ${out.x5u})`,
      );
    return EXIT.OK;
  }

  if (sub === "show") {
    const creds = await loadCredentials(g.home);
    const list = creds.map((c) => ({
      name: c.name,
      x5u: c.x5u,
      numbers: c.tnAuthList.map((e) =>
        e.type === "one" ? e.tn : e.type === "range" ? `${e.start}+${e.count}` : `spc:${e.spc}`,
      ),
      notAfter: c.chain.certificates[0]?.notAfter.toISOString(),
    }));
    const root = join(g.home, ROOT_PEM);
    if (g.json) printJson({ root: (await exists(root)) ? root : null, credentials: list });
    else {
      console.log((await exists(root)) ? `demo CA: ${root}` : "no demo CA (run `stir-oob ca init`)");
      for (const c of list)
        console.log(`  ${bold(c.name)}  ${c.numbers.join(", ")}  ${dim(`until ${c.notAfter}`)}`);
    }
    return EXIT.OK;
  }
  throw new UsageError(`Unknown ca subcommand ${JSON.stringify(sub)} (init, issue, show)`);
}
