/**
 * Our side of `npm run bench:peer`: the CPS as a user runs it, `npm start` (src/dev/start.mjs: workerd
 * through Miniflare's API, src/dev/miniflare-server.mjs; with `watch`, `npm start -- --watch`, through
 * `wrangler dev`), on a free port with a fresh state directory.
 * Untokened: as `npm start` is (ALLOW_UNTOKENED_STORES on locally). Tokened: `npm start -- --var
 * ALLOW_UNTOKENED_STORES:false`, so every store must carry a storage token; the tokens are minted with
 * the issuer key `npm start` gives the Worker (.wrangler/dev-issuer-keys.json, made by it if missing).
 * Bare (`bare`): not the CPS but the bench's bare Durable Object baseline, served the same way
 * (bench/peer/bare-server.mjs), as the runtime's own floor measured in the same run.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureLocalIssuerKeys } from "../../src/dev/issuer-key.mjs";
import { freePort, REPO_ROOT, waitForHealth } from "../../src/dev/local-server.mjs";
import { issuerSigningKey } from "../lib/issuer-key.mjs";
import { spawnGroup, tail } from "./peer.mjs";

/**
 * Starts `node src/dev/start.mjs` (what `npm start` runs) as its own process group; resolves once
 * /health answers (and, tokened, once a well-formed untokened store, `probeBlob`, is refused). Returns { url, roots, stop,
 * issuer: { id, key } (the current issuer key, tokened only) }.
 */
export async function startCps({
  name,
  tokened,
  watch = false,
  bare = false,
  logDir,
  log,
  probeBlob,
  vars = {},
}) {
  const port = await freePort();
  const state = await mkdtemp(join(tmpdir(), "cps-peer-bench-"));
  const logFile = join(logDir, `${name}.log`);
  // An inspector port of its own: wrangler's default (9229) is taken by the first `wrangler dev` on the
  // machine, and a second one racing for it can fail to start.
  const inspectorPort = await freePort();
  const script = bare ? "bench/peer/bare-server.mjs" : "src/dev/start.mjs";
  const args = [join(REPO_ROOT, script), "--persist-to", state, "--inspector-port", String(inspectorPort)];
  if (tokened) args.push("--var", "ALLOW_UNTOKENED_STORES:false");
  // Extra Worker vars for this run (bench/hot-number.mjs: HOT_NUMBERS), as `npm start -- --var K:V`.
  for (const [key, value] of Object.entries(vars)) args.push("--var", `${key}:${value}`);
  // `npm start -- --watch`: through wrangler dev (its proxy Worker and log relay), as npm start served
  // before it used Miniflare's API; kept as a baseline measured in the same run.
  if (watch) args.push("--watch");
  const server = spawnGroup(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1" },
    logFile,
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await server.stop();
    await rm(state, { recursive: true, force: true });
  };
  try {
    await waitForHealth(url, {
      timeoutMs: 180_000,
      failed: () => (server.isDead() ? new Error(`npm start exited:\n${tail(logFile)}`) : null),
    });
    let issuer;
    if (tokened) {
      // Tokens really required? A well-formed store without one must be refused, or the row would
      // be mislabelled.
      const res = await fetch(`${url}/cps/15550000000/ppts`, {
        method: "POST",
        headers: { "Content-Type": "application/passport" },
        body: probeBlob,
      });
      const text = await res.text();
      if (res.status !== 401 && res.status !== 403) {
        throw new Error(
          `tokened CPS answered ${res.status} to an untokened store (expected 401/403): ${text}`,
        );
      }
      issuer = await currentIssuerKey();
    }
    log(
      `${name}: ${bare ? "the bare baseline" : "npm start"} on ${url}${tokened ? " (--var ALLOW_UNTOKENED_STORES:false)" : ""}, state ${state}`,
    );
    return {
      url,
      roots: [server.pid],
      stop,
      issuer,
      inspectorPort,
      command: `PORT=${port} node ${script} ${args.slice(1).join(" ")}`,
      // wrangler dev watches the sources: an edit during a round rebuilds and reloads the Worker.
      logFile,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The issuer key `npm start` passed to the Worker that is valid now, as a signing CryptoKey. */
async function currentIssuerKey() {
  const entries = JSON.parse(await ensureLocalIssuerKeys(join(REPO_ROOT, ".wrangler")));
  const now = Date.now();
  const entry = entries.find((e) => Date.parse(e.notBefore) <= now && now < Date.parse(e.notAfter));
  if (!entry) throw new Error("no issuer key in .wrangler/dev-issuer-keys.json is valid now");
  return { id: entry.id, key: await issuerSigningKey(entry) };
}
