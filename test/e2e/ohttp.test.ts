/**
 * Oblivious HTTP end to end (RFC 8816 §13, RFC 9458; docs/ohttp.md) over two local `wrangler dev`
 * processes: the CPS (its gateway on, OHTTP_KEYS made here) and the relay Worker. Between them sits a
 * small tap (a Node HTTP server) that records every byte the relay forwards, so the test can show
 * what the gateway receives from the relay: the tap holds the gateway's key (the test made it) and
 * opens each forwarded request to check the inner request too.
 *
 * Alice's call is placed and verified with the CLI, every command under --relay --require-relay:
 * key registration, token fetch, key lookup, discovery, the store and the retrieval all go through
 * the relay. Then: the CPS's request log shows only the gateway path; neither the forwarded request
 * nor the inner one carries a client address; the relay's log and the bytes it forwards carry no
 * number, path or blob.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CpsClient } from "../../src/client/cps-client.js";
import { OhttpRelay } from "../../src/client/relay.js";
import { oneIssuerKeyVar } from "../../src/dev/issuer-key.mjs";
import { type LocalServer, startLocalServer } from "../../src/dev/local-server.mjs";
import { localRelayToken, startLocalRelay } from "../../src/dev/relay-server.mjs";
import {
  decapsulateRequest,
  decodeRequest,
  decodeResponse,
  encapsulateRequest,
  encodeRequest,
  generateGatewayKeyEntry,
  parseGatewayKeys,
  parseKeyConfigs,
  selectKeyConfig,
} from "../../src/ohttp/index.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { type CliRun, runCli } from "../helpers/cli.js";

const BOB = "+2-222-555-2222";
const BOB_TN = canonicalTn(BOB);
/** A client address nobody has: set by the client on its way in, it must never come out. */
const MARKER_IP = "203.0.113.77";

interface Forwarded {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

let home: string;
let cps: LocalServer;
let relay: Awaited<ReturnType<typeof startLocalRelay>>;
let tap: Server;
let tapUrl: string;
const forwarded: Forwarded[] = [];
const ohttpKeys = JSON.stringify([generateGatewayKeyEntry(7)]);
/** The relay's token; the CPS lists only its SHA-256 (OHTTP_RELAYS), so only this relay is accepted. */
const relayToken = localRelayToken();

/** Runs `stir-oob args...` through another relay (or none: ""), requiring it. */
function cliVia(relayUrl: string, ...args: string[]): Promise<CliRun> {
  return runCli(["--require-relay", ...args], { home, cps: cps?.url ?? "", relay: relayUrl });
}

/** Runs `stir-oob args...` through the relay, requiring it. */
function cli(...args: string[]): Promise<CliRun> {
  return cliVia(relay?.gatewayUrl() ?? "", ...args);
}

/** The tap: records what the relay forwards, passes it on to the CPS unchanged, answers back. */
async function startTap(target: string): Promise<void> {
  tap = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      forwarded.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
      const headers: Record<string, string> = {};
      for (const name of ["content-type", "accept", "ohttp-relay-token"]) {
        const v = req.headers[name];
        if (typeof v === "string") headers[name] = v;
      }
      const answer = await fetch(`${target}${req.url}`, {
        method: req.method ?? "GET",
        headers,
        ...(body.length > 0 ? { body } : {}),
      });
      const out: Record<string, string> = {};
      for (const name of ["content-type", "cache-control"]) {
        const v = answer.headers.get(name);
        if (v !== null) out[name] = v;
      }
      res.writeHead(answer.status, out);
      res.end(Buffer.from(await answer.arrayBuffer()));
    });
  });
  await new Promise<void>((r) => tap.listen(0, "127.0.0.1", r));
  tapUrl = `http://127.0.0.1:${(tap.address() as AddressInfo).port}`;
}

/** Request lines of a wrangler dev log (`[wrangler:info] GET /path 200 OK (3ms)`): method and path. */
function requestLines(output: string): string[] {
  const lines: string[] = [];
  for (const m of output.matchAll(/\b(GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) (\/\S*) \d{3}\b/g))
    lines.push(`${m[1]} ${m[2]}`);
  return lines;
}

/** Address-bearing header fields (RFC 7239 and the common de facto ones). */
const ADDRESS_FIELDS = ["forwarded", "x-forwarded-for", "x-real-ip", "cf-connecting-ip", "true-client-ip"];

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "stir-oob-ohttp-"));
  const ca = await runCli(
    ["ca", "init", "--issue", "alice=+1-111-555-1111", "--issue", "bob=+2-222-555-2222"],
    {
      home,
    },
  );
  expect(ca.code, ca.stderr).toBe(0);
  cps = await startLocalServer({
    vars: {
      TRUST_ANCHORS_PEM: await readFile(join(home, "ca/root.pem"), "utf8"),
      TOKEN_ISSUER_KEYS: await oneIssuerKeyVar("ohttp-1"),
      ALLOW_UNTOKENED_STORES: "false",
      OHTTP_KEYS: ohttpKeys,
      OHTTP_RELAYS: relayToken.relays,
    },
  });
  await startTap(cps.url);
  relay = await startLocalRelay({ gateways: { cps: tapUrl }, tokens: { cps: relayToken.token } });
});

afterAll(async () => {
  await relay?.stop();
  await cps?.stop();
  await new Promise((r) => (tap ? tap.close(r) : r(undefined)));
  if (home) await rm(home, { recursive: true, force: true });
});

describe("a call placed and verified entirely through the relay (CLI, --require-relay)", () => {
  it("keys register, tokens fetch, place and verify all succeed through the relay", async () => {
    expect((await cli("keygen", "--tn", BOB)).code).toBe(0);
    const reg = await cli("keys", "register", "--tn", BOB);
    expect(reg.code, reg.stderr).toBe(0);
    const tokens = await cli("tokens", "fetch", "--count", "2");
    expect(tokens.code, tokens.stderr).toBe(0);
    const place = await cli("place", "--from", "+1-111-555-1111", "--to", BOB, "--json");
    expect(place.code, place.stderr).toBe(0);
    expect(JSON.parse(place.stdout).stored).toHaveLength(1);
    const verify = await cli("verify", "--to", BOB, "--calling", "+1-111-555-1111", "--json");
    expect(verify.code, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout).verdict).toBe("verified");
    // Everything the relay forwarded went to the gateway resource and nowhere else.
    expect(new Set(forwarded.map((f) => `${f.method} ${f.path}`))).toEqual(
      new Set(["GET /.well-known/ohttp-gateway", "POST /.well-known/ohttp-gateway"]),
    );
    expect(forwarded.filter((f) => f.method === "POST").length).toBeGreaterThanOrEqual(6);
  });

  it("the CPS's request log shows only the gateway path (no store, list, key or token path)", () => {
    // Before this point the CPS had only the readiness probes (/health) besides the relayed traffic.
    const lines = requestLines(cps.output()).filter((l) => l !== "GET /health");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/^(GET|POST) \/\.well-known\/ohttp-gateway$/);
  });

  it("every request the relay forwards has one length (padding) and no number, path or blob", async () => {
    const posts = forwarded.filter((f) => f.method === "POST");
    expect(new Set(posts.map((f) => f.body.length)).size).toBe(1);
    // The stored blob, read directly now that the relayed part is over.
    const listed = await new CpsClient({ baseUrl: cps.url }).list(BOB_TN);
    const needles = [
      BOB_TN,
      "2-222-555-2222",
      `/cps/${BOB_TN}`,
      `/keys/${BOB_TN}`,
      // The key lookup is by prefix (RFC 8816 §11): not even the block shows on the relay's side.
      `prefix=${BOB_TN.slice(0, -2)}xx`,
      "/tokens",
      "ppts",
      ...listed.map((l) => l.blob.slice(0, 40)),
    ];
    const wire = Buffer.concat(
      forwarded.map((f) => Buffer.concat([Buffer.from(JSON.stringify(f.headers)), f.body])),
    );
    const relayLog = relay.output();
    for (const needle of needles) {
      expect(wire.includes(Buffer.from(needle)), needle).toBe(false);
      expect(relayLog.includes(needle), needle).toBe(false);
    }
    for (const l of listed) {
      const raw = Buffer.from(l.blob, "base64url").subarray(100, 132);
      expect(wire.includes(raw)).toBe(false);
    }
  });
});

describe("no client address reaches the CPS", () => {
  it("neither the forwarded request nor the inner request carries one, nor the CPS's log", async () => {
    forwarded.length = 0;
    // The client announces an address on its way in (miniflare keeps CF-Connecting-IP locally).
    const marked = new OhttpRelay({
      url: relay.gatewayUrl(),
      fetch: (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set("cf-connecting-ip", MARKER_IP);
        headers.set("x-forwarded-for", MARKER_IP);
        headers.set("forwarded", `for=${MARKER_IP}`);
        return fetch(input, { ...init, headers });
      },
    });
    const client = new CpsClient({ baseUrl: cps.url, relay: marked, requireRelay: true });
    expect((await client.list(BOB_TN)).length).toBeGreaterThan(0);

    const posts = forwarded.filter((f) => f.method === "POST");
    expect(posts).toHaveLength(1);
    const keys = await parseGatewayKeys(ohttpKeys);
    for (const f of forwarded) {
      for (const field of ADDRESS_FIELDS) expect(f.headers[field], field).toBeUndefined();
      expect(JSON.stringify(f.headers)).not.toContain(MARKER_IP);
    }
    // What names the relay (its token, the same for every client) goes with the sealed request only.
    expect(posts[0]?.headers["ohttp-relay-token"]).toBe(relayToken.token);
    // The inner request, as the gateway opens it: the CPS origin, the path, no address field.
    const { request } = await decapsulateRequest(keys, new Uint8Array(posts[0]?.body ?? []));
    const inner = decodeRequest(request);
    expect(inner.authority).toBe(new URL(cps.url).host);
    expect(inner.path).toBe(`/cps/${BOB_TN}/ppts`);
    for (const [name, value] of inner.headers) {
      expect(ADDRESS_FIELDS).not.toContain(name.toLowerCase());
      expect(value).not.toContain(MARKER_IP);
    }
    expect(cps.output()).not.toContain(MARKER_IP);
    expect(relay.output()).not.toContain(MARKER_IP);
  });

  it("watch refuses under --require-relay (push is a WebSocket: it cannot go through OHTTP)", async () => {
    const run = await cli("watch", "--to", BOB, "--timeout", "1");
    expect(run.code).toBe(64);
    expect(run.stderr).toContain("cannot go through an Oblivious HTTP relay");
  });
});

describe("the gateway accepts only the relays on its list (OHTTP_RELAYS)", () => {
  /** A sealed GET of Bob's list, for the gateway resource: a valid request in every way but its sender. */
  async function sealedList() {
    const keys = await fetch(`${cps.url}/.well-known/ohttp-gateway`, {
      headers: { Accept: "application/ohttp-keys" },
    });
    // The key configuration stays open to anyone (no token needed to read it).
    expect(keys.status).toBe(200);
    const config = selectKeyConfig(parseKeyConfigs(new Uint8Array(await keys.arrayBuffer())));
    return encapsulateRequest(
      config,
      encodeRequest({
        method: "GET",
        scheme: "http",
        authority: new URL(cps.url).host,
        path: `/cps/${BOB_TN}/ppts`,
        headers: [],
        body: new Uint8Array(0),
      }),
    );
  }

  function postGateway(body: Uint8Array, token?: string) {
    const headers: Record<string, string> = { "Content-Type": "message/ohttp-req" };
    if (token !== undefined) headers["OHTTP-Relay-Token"] = token;
    return fetch(`${cps.url}/.well-known/ohttp-gateway`, { method: "POST", headers, body });
  }

  it("a direct POST without the token, with another token or with the listed hash is 403 OHTTP_RELAY_UNKNOWN", async () => {
    const { encapsulatedRequest } = await sealedList();
    for (const token of [
      undefined,
      "",
      localRelayToken().token,
      relayToken.tokenSha256,
      `${relayToken.token}x`,
      relayToken.token.slice(0, -1),
    ]) {
      const res = await postGateway(encapsulatedRequest, token);
      expect(res.status, String(token)).toBe(403);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ code: "OHTTP_RELAY_UNKNOWN", status: 403 });
      expect(text).not.toContain(relayToken.tokenSha256);
    }
    // Control: the same sealed bytes with the relay's token are opened and answered.
    const { encapsulatedRequest: again, context } = await sealedList();
    const ok = await postGateway(again, relayToken.token);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe("message/ohttp-res");
    const inner = decodeResponse(await context.decapsulateResponse(new Uint8Array(await ok.arrayBuffer())));
    expect(inner.status).toBe(200);
  });

  it("a second relay without a listed token is refused 403 and nothing is stored; the listed relay stores", async () => {
    const rogue = await startLocalRelay({ gateways: { cps: cps.url } });
    try {
      // Bob's openable blobs (real ones; the CPS's decoys open for nobody), read through the listed relay.
      const opened = async () => {
        const v = await cliVia(
          relay.gatewayUrl(),
          "verify",
          "--to",
          BOB,
          "--calling",
          "+1-111-555-1111",
          "--json",
        );
        return (JSON.parse(v.stdout) as { opened: number }).opened;
      };
      const before = await opened();
      const refused = await cliVia(
        rogue.gatewayUrl(),
        "place",
        "--from",
        "+1-111-555-1111",
        "--to",
        BOB,
        "--json",
      );
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/403|OHTTP_RELAY_UNKNOWN/);
      // The rogue relay forwarded (it has no list of its own); the gateway refused it.
      expect(rogue.output()).toMatch(/"route":"request","status":403/);
      // Nothing new to open (an earlier blob may have expired meanwhile: at most as many as before).
      expect(await opened()).toBeLessThanOrEqual(before);
      // Control: the same command through the listed relay stores, and Bob opens it.
      const placed = await cliVia(
        relay.gatewayUrl(),
        "place",
        "--from",
        "+1-111-555-1111",
        "--to",
        BOB,
        "--json",
      );
      expect(placed.code, placed.stderr).toBe(0);
      expect(JSON.parse(placed.stdout).stored).toHaveLength(1);
      expect(await opened()).toBeGreaterThanOrEqual(1);
    } finally {
      await rogue.stop();
    }
  });
});
