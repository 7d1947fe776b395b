/**
 * The republisher's own logic (src/federation/republish.ts), on Node: the queue message shape, what
 * each peer answer leads to, the ATIS_CPS_CREDENTIAL secret, and the consumer against a real HTTP
 * peer on loopback that misbehaves on purpose (down, busy, refusing, slow to come back). The queue
 * itself is stood in for by plain objects recording ack/retry/send (the platform's Message, MessageBatch
 * and Queue): the point here is what the code asks of it; the real queue, its retries and two real
 * CPSes are test/e2e/atis-federation.test.ts.
 */

import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { compactVerify, decodeProtectedHeader } from "jose";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { type CpsConfig, readConfig } from "../../src/config.js";
import { CpsError } from "../../src/errors.js";
import {
  enqueueRepublish,
  handleRepublishBatch,
  parseCpsCredential,
  parseRepublishMessage,
  RETRY_DELAY_SECONDS,
  type RepublishMessage,
  republishOutcome,
} from "../../src/federation/republish.js";
import { ATIS_MAX_EXP_SECONDS, checkAtisClaims } from "../../src/stir/atis-claims.js";
import { acceptedPassportsDigests } from "../../src/stir/atis-digest.js";
import { certificatePublicKey } from "../../src/stir/cert-parse.js";
import { createTestPki, type TestCredential, type TestPki } from "../../src/stir/test-pki.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { cpsCredentialSecret } from "../helpers/federation.js";

const DEST = canonicalTn("14155550123");
const ORIG = canonicalTn("12025550101");
/** Shaped like full-form JWSs; the republisher never looks inside (the peer verifies them). */
const PASSPORTS = ["eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjF9.c2ln", "eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjJ9.c2ln"];

let pki: TestPki;
let cpsA: TestCredential;
let secretA: string;

beforeAll(async () => {
  pki = await createTestPki();
  cpsA = await pki.issue({ tnAuthList: [{ type: "spc", spc: "SPCA" }], subject: "CPS A" });
  secretA = await cpsCredentialSecret(cpsA);
});

function message(
  overrides: Partial<RepublishMessage> = {},
  peer = "https://cps-b.example",
): RepublishMessage {
  return {
    v: 1,
    peer,
    dest: DEST,
    orig: ORIG,
    passports: PASSPORTS,
    expiresAt: Date.now() + 30_000,
    ...overrides,
  };
}

describe("parseRepublishMessage", () => {
  it("takes back what enqueueRepublish sends", () => {
    const m = message();
    expect(parseRepublishMessage(JSON.parse(JSON.stringify(m)))).toEqual(m);
  });

  it.each<[string, unknown]>([
    ["null", null],
    ["an array", [message()]],
    ["another version", { ...message(), v: 2 }],
    ["no peer", { ...message(), peer: "" }],
    ["a number not canonical", { ...message(), dest: "+1 415 555 0123" }],
    ["a calling number missing", { ...message(), orig: undefined }],
    ["no PASSporTs", { ...message(), passports: [] }],
    ["11 PASSporTs", { ...message(), passports: Array(11).fill(PASSPORTS[0]) }],
    ["a PASSporT not a string", { ...message(), passports: [1] }],
    ["an expiry not a number", { ...message(), expiresAt: "soon" }],
    ["an expiry NaN", { ...message(), expiresAt: Number.NaN }],
  ])("drops %s", (_why, body) => {
    expect(parseRepublishMessage(body)).toBeNull();
  });
});

describe("republishOutcome: what a peer's status leads to", () => {
  it.each([200, 201, 204])("%i: delivered (ack)", (s) => expect(republishOutcome(s)).toBe("ack"));
  it.each([429, 500, 502, 503, 504])("%i: busy or broken, retry", (s) =>
    expect(republishOutcome(s)).toBe("retry"),
  );
  it.each([301, 302, 400, 401, 403, 404, 405, 409, 413, 415, 422])("%i: refused for good, drop", (s) =>
    expect(republishOutcome(s)).toBe("drop"),
  );
});

describe("parseCpsCredential (ATIS_CPS_CREDENTIAL)", () => {
  it("takes the key, the chain and the first SPC of the leaf's TNAuthList", async () => {
    const cred = await parseCpsCredential(secretA);
    expect(cred.spc).toBe("SPCA");
    expect(cred.x5c.map((d) => Buffer.from(d).toString("hex"))).toEqual(
      cpsA.der.map((d) => Buffer.from(d).toString("hex")),
    );
  });

  it("takes the first SPC when the certificate lists numbers and several SPCs", async () => {
    const cred = await pki.issue({
      tnAuthList: [
        { type: "range", start: "14155550100", count: 100 },
        { type: "spc", spc: "SPC1" },
        { type: "spc", spc: "SPC2" },
      ],
    });
    expect((await parseCpsCredential(await cpsCredentialSecret(cred))).spc).toBe("SPC1");
  });

  const refusals: [string, () => Promise<string>][] = [
    ["not JSON", async () => "privateKeyPkcs8=abc"],
    ["not an object", async () => "[]"],
    ["no key", async () => JSON.stringify({ x5c: JSON.parse(secretA).x5c })],
    [
      "a key that is not base64url PKCS#8",
      async () => JSON.stringify({ ...JSON.parse(secretA), privateKeyPkcs8: "AAAA" }),
    ],
    [
      "no chain",
      async () => JSON.stringify({ privateKeyPkcs8: JSON.parse(secretA).privateKeyPkcs8, x5c: [] }),
    ],
    ["a chain in base64url", async () => JSON.stringify({ ...JSON.parse(secretA), x5c: ["-_-_"] })],
    ["a chain that is not DER", async () => JSON.stringify({ ...JSON.parse(secretA), x5c: ["AAAA"] })],
    [
      "the key of another certificate",
      async () =>
        JSON.stringify({
          privateKeyPkcs8: JSON.parse(await cpsCredentialSecret(pki.valid)).privateKeyPkcs8,
          x5c: JSON.parse(secretA).x5c,
        }),
    ],
    [
      "a leaf that lists no SPC",
      async () =>
        cpsCredentialSecret(
          await pki.issue({ tnAuthList: [{ type: "range", start: "14155550100", count: 100 }] }),
        ),
    ],
  ];
  it.each(refusals)("refuses %s: MISCONFIGURED naming the secret, never its value", async (_why, make) => {
    const raw = await make();
    const err = await parseCpsCredential(raw).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CpsError);
    expect((err as CpsError).code).toBe("MISCONFIGURED");
    expect((err as CpsError).message).toContain("ATIS_CPS_CREDENTIAL");
    const key = (JSON.parse(secretA) as { privateKeyPkcs8: string }).privateKeyPkcs8;
    expect((err as CpsError).message).not.toContain(key.slice(0, 16));
  });
});

// ---------------------------------------------------------------------------------------------
// The consumer against a real HTTP peer on loopback (a test double of a peer CPS: the point is how
// the republisher reacts to what the peer answers).

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

let peer: Server;
let peerUrl: string;
let answers: (() => { status: number; body?: string })[];
let received: Received[];

beforeAll(async () => {
  peer = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      received.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      const answer: { status: number; body?: string } = (answers.shift() ?? (() => ({ status: 201 })))();
      res.writeHead(answer.status, { "content-type": "application/json" });
      res.end(answer.body ?? JSON.stringify({ status: answer.status, message: "answer" }));
    });
  });
  await new Promise<void>((r) => peer.listen(0, "127.0.0.1", r));
  peerUrl = `http://127.0.0.1:${(peer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => peer.close(r));
});

let logs: string[];
beforeEach(() => {
  answers = [];
  received = [];
  logs = [];
  vi.spyOn(console, "log").mockImplementation((line: unknown) => {
    logs.push(String(line));
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** A CPS's env: loopback origin (so a loopback peer is allowed), the peer, the credential. */
function envA(overrides: Record<string, string> = {}): Env {
  return {
    CPS_ORIGIN: "http://127.0.0.1:1",
    ATIS_PEERS: JSON.stringify([{ url: peerUrl, spc: "SPCB" }]),
    ATIS_CPS_CREDENTIAL: secretA,
    ...overrides,
  } as unknown as Env;
}

interface FakeMessage extends Message<unknown> {
  acked: boolean;
  retried: QueueRetryOptions | undefined;
}

function fakeMessage(body: unknown, attempts = 1): FakeMessage {
  const m: FakeMessage = {
    id: crypto.randomUUID(),
    timestamp: new Date(),
    body,
    attempts,
    acked: false,
    retried: undefined,
    ack() {
      m.acked = true;
    },
    retry(options) {
      m.retried = options ?? {};
    },
  };
  return m;
}

function batchOf(...messages: FakeMessage[]): MessageBatch<unknown> {
  return {
    queue: "stir-oob-atis-republish",
    messages,
    metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } },
    ackAll: () => {
      for (const m of messages) m.ack();
    },
    retryAll: (o) => {
      for (const m of messages) m.retry(o);
    },
  };
}

/** Nothing the republisher logs names a number (docs/design.md invariant 6). */
function expectNoNumbersLogged(): void {
  for (const line of logs) {
    expect(line).not.toContain(DEST);
    expect(line).not.toContain(ORIG);
  }
}

describe("handleRepublishBatch: one try per message", () => {
  it("POSTs the PASSporTs to the peer with a republish token it can check, and acks on 201", async () => {
    const msg = message({}, peerUrl);
    const m = fakeMessage(JSON.parse(JSON.stringify(msg)));
    await handleRepublishBatch(batchOf(m), envA());
    expect(m).toMatchObject({ acked: true, retried: undefined });
    expect(received).toHaveLength(1);
    const req = received[0]!;
    expect(req.method).toBe("POST");
    expect(req.url).toBe(`/passports/${DEST}/${ORIG}`);
    expect(req.headers["content-type"]).toBe("application/json");
    // The same on every try of this message: the peer answers a retry from its idempotency record.
    expect(req.headers["idempotency-key"]).toBe(m.id);
    expect(JSON.parse(req.body)).toEqual({ passports: PASSPORTS });

    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
    const header = decodeProtectedHeader(token);
    expect(header).toMatchObject({
      alg: "ES256",
      x5c: cpsA.der.map((d) => Buffer.from(d).toString("base64")),
    });
    const { payload } = await compactVerify(token, await certificatePublicKey(cpsA.chain[0]!));
    const claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
    const iat = claims.iat as number;
    expect(claims).toMatchObject({
      action: "republish",
      aud: new URL(peerUrl).host,
      spc: "SPCA",
      iss: "SPCA",
      orig: { tn: ORIG },
      dest: { tn: [DEST] },
    });
    expect(Math.abs(iat - Date.now() / 1000)).toBeLessThan(5);
    expect(claims.exp).toBe(Math.min(iat + ATIS_MAX_EXP_SECONDS, Math.floor(msg.expiresAt / 1000)));
    expect(claims.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // The peer's own claim check (src/stir/atis-claims.ts) accepts it, digest included.
    const digests = await acceptedPassportsDigests({
      passports: PASSPORTS,
      object: { passports: PASSPORTS },
    });
    expect(
      checkAtisClaims(claims, { actions: ["publish", "republish"], dest: DEST, orig: ORIG, digests }),
    ).toMatchObject({ action: "republish", spc: "SPCA", digestVariant: "A" });
    expect(logs.map((l) => JSON.parse(l))).toContainEqual({
      event: "atis_republish_sent",
      peer: "SPCB",
      status: 201,
      attempts: 1,
    });
    expectNoNumbersLogged();
  });

  it("the token's exp never passes the PASSporTs' expiry", async () => {
    const expiresAt = Date.now() + 10_500;
    await handleRepublishBatch(batchOf(fakeMessage(message({ expiresAt }, peerUrl))), envA());
    const token = /^Bearer (.+)$/.exec(received[0]?.headers.authorization ?? "")?.[1] ?? "";
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as { exp: number };
    expect(claims.exp).toBe(Math.floor(expiresAt / 1000));
  });

  it.each([429, 500, 503])(
    "retries after %i (busy or broken peer), RETRY_DELAY_SECONDS later",
    async (status) => {
      answers.push(() => ({ status }));
      const m = fakeMessage(message({}, peerUrl), 3);
      await handleRepublishBatch(batchOf(m), envA());
      expect(m).toMatchObject({ acked: false, retried: { delaySeconds: RETRY_DELAY_SECONDS } });
      expect(logs.map((l) => JSON.parse(l))).toContainEqual({
        event: "atis_republish_retry",
        peer: "SPCB",
        status,
        attempts: 3,
      });
    },
  );

  it("retries when the peer is down (connection refused)", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const downUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((r) => closed.close(r));
    const m = fakeMessage(message({}, downUrl));
    await handleRepublishBatch(
      batchOf(m),
      envA({ ATIS_PEERS: JSON.stringify([{ url: downUrl, spc: "SPCB" }]) }),
    );
    expect(m).toMatchObject({ acked: false, retried: { delaySeconds: RETRY_DELAY_SECONDS } });
    expect(logs.map((l) => JSON.parse(l))).toContainEqual(
      expect.objectContaining({ event: "atis_republish_retry", status: "network" }),
    );
  });

  it.each([400, 401, 403, 404, 302])(
    "drops after %i (refused for good) and logs the peer's code",
    async (status) => {
      answers.push(() => ({
        status,
        body: JSON.stringify({ status, code: "ATIS_PEER_UNKNOWN", message: "x" }),
      }));
      const m = fakeMessage(message({}, peerUrl));
      await handleRepublishBatch(batchOf(m), envA());
      expect(m).toMatchObject({ acked: true, retried: undefined });
      expect(logs.map((l) => JSON.parse(l))).toContainEqual({
        event: "atis_republish_refused",
        peer: "SPCB",
        status,
        code: "ATIS_PEER_UNKNOWN",
        attempts: 1,
      });
    },
  );

  it("logs no free text from a peer's error body, only a well-formed code", async () => {
    answers.push(() => ({ status: 400, body: JSON.stringify({ code: `+${DEST} was refused` }) }));
    await handleRepublishBatch(batchOf(fakeMessage(message({}, peerUrl))), envA());
    expect(logs.map((l) => JSON.parse(l))).toContainEqual(expect.objectContaining({ code: "none" }));
    expectNoNumbersLogged();
  });

  it("reads at most a few KiB of a peer's error body", async () => {
    const pad = "x".repeat(1_000_000);
    answers.push(() => ({ status: 400, body: JSON.stringify({ code: "ATIS_PEER_UNKNOWN", pad }) }));
    const m = fakeMessage(message({}, peerUrl));
    await handleRepublishBatch(batchOf(m), envA());
    expect(m.acked).toBe(true);
    expect(logs.map((l) => JSON.parse(l))).toContainEqual(
      expect.objectContaining({ event: "atis_republish_refused", code: "none" }),
    );
  });

  it("drops an expired message without contacting the peer", async () => {
    const m = fakeMessage(message({ expiresAt: Date.now() - 1 }, peerUrl), 7);
    await handleRepublishBatch(batchOf(m), envA());
    expect(m.acked).toBe(true);
    expect(received).toHaveLength(0);
    expect(logs.map((l) => JSON.parse(l))).toContainEqual({
      event: "atis_republish_expired",
      reason: "expired",
      attempts: 7,
    });
  });

  it("does not retry when the next try would come after the expiry", async () => {
    answers.push(() => ({ status: 503 }));
    const m = fakeMessage(
      message({ expiresAt: Date.now() + (RETRY_DELAY_SECONDS * 1000) / 2 + 1000 }, peerUrl),
    );
    await handleRepublishBatch(batchOf(m), envA());
    expect(received).toHaveLength(1);
    expect(m).toMatchObject({ acked: true, retried: undefined });
    expect(logs.map((l) => JSON.parse(l))).toContainEqual(
      expect.objectContaining({ event: "atis_republish_expired", reason: "expires_before_retry" }),
    );
  });

  it("drops a message for a peer no longer in ATIS_PEERS, and a malformed one", async () => {
    const gone = fakeMessage(message({}, "https://cps-c.example"));
    const junk = fakeMessage({ v: 1, peer: peerUrl });
    await handleRepublishBatch(batchOf(gone, junk), envA());
    expect([gone.acked, junk.acked]).toEqual([true, true]);
    expect(received).toHaveLength(0);
  });

  it("takes several messages of a batch, each on its own: one delivered, one retried", async () => {
    answers.push(
      () => ({ status: 201 }),
      () => ({ status: 503 }),
    );
    const [m1, m2] = [fakeMessage(message({}, peerUrl)), fakeMessage(message({}, peerUrl))];
    await handleRepublishBatch(batchOf(m1, m2), envA());
    expect(received).toHaveLength(2);
    const outcomes = [m1, m2].map((m) => (m.acked ? "ack" : m.retried ? "retry" : "none")).sort();
    expect(outcomes).toEqual(["ack", "retry"]);
  });

  it("without a usable credential: drops, sends nothing", async () => {
    for (const credential of ["", "{}"]) {
      const m = fakeMessage(message({}, peerUrl));
      await handleRepublishBatch(batchOf(m), envA({ ATIS_CPS_CREDENTIAL: credential }));
      expect(m.acked).toBe(true);
    }
    expect(received).toHaveLength(0);
  });

  it("with a broken var (readConfig throws): retries the whole batch, sends nothing", async () => {
    const m = fakeMessage(message({}, peerUrl));
    await handleRepublishBatch(batchOf(m), envA({ ATIS_PEERS: "not json" }));
    expect(m).toMatchObject({ acked: false, retried: { delaySeconds: RETRY_DELAY_SECONDS } });
    expect(received).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------
// The producer side.

function recordingQueue(fail = false) {
  const sent: { body: unknown; options: QueueSendOptions | undefined }[] = [];
  const queue = {
    send: async (body: unknown, options?: QueueSendOptions) => {
      if (fail) throw new Error("queue down");
      sent.push({ body, options });
      return { metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } };
    },
  };
  return { sent, queue };
}

function producerEnv(vars: Record<string, string>, queue: unknown): { env: Env; config: CpsConfig } {
  const env = {
    CPS_ORIGIN: "https://cps-a.example",
    ATIS_CPS_CREDENTIAL: secretA,
    ...vars,
    ATIS_REPUBLISH: queue,
  };
  return { env: env as unknown as Env, config: readConfig(env as unknown as Env) };
}

const PUBLISH = { dest: DEST, orig: ORIG, passports: PASSPORTS, expiresAt: 1_900_000_000_000 };

describe("enqueueRepublish", () => {
  it("queues one message per peer, so a retry repeats only the peer that failed", async () => {
    const { sent, queue } = recordingQueue();
    const peers = [
      { url: "https://cps-b.example", spc: "SPCB" },
      { url: "https://cps-c.example:8443", spc: "SPCC" },
    ];
    const { env, config } = producerEnv({ ATIS_PEERS: JSON.stringify(peers) }, queue);
    await enqueueRepublish(env, config, PUBLISH);
    expect(sent).toEqual(
      peers.map((p) => ({ body: { v: 1, peer: p.url, ...PUBLISH }, options: { contentType: "json" } })),
    );
    for (const s of sent) expect(parseRepublishMessage(s.body)).not.toBeNull();
  });

  it("queues nothing without peers, and skips a peer that is this CPS itself", async () => {
    const { sent, queue } = recordingQueue();
    const none = producerEnv({ ATIS_PEERS: "[]" }, queue);
    await enqueueRepublish(none.env, none.config, PUBLISH);
    const self = producerEnv(
      { ATIS_PEERS: JSON.stringify([{ url: "https://cps-a.example", spc: "SPCA" }]) },
      queue,
    );
    await enqueueRepublish(self.env, self.config, PUBLISH);
    expect(sent).toEqual([]);
  });

  it("queues nothing, and says so once, with peers but no usable credential or no queue", async () => {
    const { sent, queue } = recordingQueue();
    const peers = JSON.stringify([{ url: "https://cps-b.example", spc: "SPCB" }]);
    for (const [vars, q] of [
      [{ ATIS_PEERS: peers, ATIS_CPS_CREDENTIAL: "" }, queue],
      [{ ATIS_PEERS: peers, ATIS_CPS_CREDENTIAL: "{}" }, queue],
      [{ ATIS_PEERS: peers }, undefined],
    ] as const) {
      const { env, config } = producerEnv(vars, q);
      await enqueueRepublish(env, config, PUBLISH);
      await enqueueRepublish(env, config, PUBLISH);
    }
    expect(sent).toEqual([]);
    const off = logs.map((l) => JSON.parse(l)).filter((l) => l.event === "atis_republish_off");
    // Once per reason for this isolate (earlier tests may have logged no_credential already).
    expect(new Set(off.map((l) => l.reason)).size).toBe(off.length);
  });

  it("throws UNAVAILABLE (503) when the queue refuses the message", async () => {
    const { queue } = recordingQueue(true);
    const { env, config } = producerEnv(
      { ATIS_PEERS: JSON.stringify([{ url: "https://cps-b.example", spc: "SPCB" }]) },
      queue,
    );
    await expect(enqueueRepublish(env, config, PUBLISH)).rejects.toMatchObject({
      code: "UNAVAILABLE",
      status: 503,
    });
  });
});
