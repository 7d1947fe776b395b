/**
 * Re-publishing to the peer CPSes, the ATIS way (ATIS-1000096 "OOB Multiple STI-CPS": the CPSes form
 * a mesh and each re-publishes every publish to the others with `action: republish`, so any of them
 * can answer any retrieval). Reliable through a Cloudflare Queue (binding ATIS_REPUBLISH, consumed by
 * this same Worker, src/index.ts): a peer that is down, overloaded or unreachable is retried every
 * RETRY_DELAY_SECONDS until it takes the PASSporTs, they expire, or the queue's max_retries run out.
 *
 * - One message per (publish, peer), so a retry repeats only the peer that failed.
 * - No loops: only a publish with action `publish` is queued (the route's rule); what a peer
 *   republishes to us is stored and bridged but never queued again.
 * - Nothing expired is sent: a message whose PASSporTs' expiry has passed (or would pass before the
 *   next try) is dropped, since RFC 8816 §7.5 / ATIS-1000105 `exp` make it worthless to the peer.
 * - Each try signs a fresh republish token with this CPS's own credential (ATIS_CPS_CREDENTIAL, x5c,
 *   `spc` = `iss` = the first SPC of its TNAuthList): the peer verifies it and every PASSporT again.
 * - Queues deliver at least once; every try of a message carries the message id as Idempotency-Key,
 *   so a peer that stored it but whose answer was lost answers the retry from its record, no new row.
 *
 * Logs carry codes, counts and the peer's SPC only (docs/design.md invariant 6).
 */
import type { AtisPeer, CpsConfig } from "../config.js";
import { readConfig } from "../config.js";
import { CpsError } from "../errors.js";
import { logEvent } from "../log.js";
import { ATIS_MAX_EXP_SECONDS } from "../stir/atis-claims.js";
import { IDEMPOTENCY_KEY, MAX_PUBLISH_PASSPORTS } from "../stir/atis-passports.js";
import { issueAtisToken } from "../stir/atis-token.js";
import { decodeBase64url } from "../stir/base64url.js";
import { readLimited } from "../stir/bytes.js";
import { certificatePublicKey, certificateTnAuthList, parseCertificateChain } from "../stir/cert-parse.js";
import { MAX_PASSPORT_LENGTH } from "../stir/passport.js";
import { isCanonicalTn } from "../stir/tn.js";

/** Version of the queue message; a consumer drops any other (never sent by this code). */
export const REPUBLISH_MESSAGE_VERSION = 1;
/** Seconds between tries to a failing peer (wrangler.toml `retry_delay` says the same). */
export const RETRY_DELAY_SECONDS = 2;
/** A peer that has not answered in this time counts as down (the message is retried). */
export const PEER_TIMEOUT_MS = 10_000;
/** Most bytes of a peer's error body read for its `code`. */
const PEER_ERROR_BODY_BYTES = 4096;

/** The queue message: one publish for one peer. */
export interface RepublishMessage {
  readonly v: 1;
  /** The peer's origin, as in ATIS_PEERS. */
  readonly peer: string;
  /** Canonical called and calling numbers (the publish path's DEST and ORIG). */
  readonly dest: string;
  readonly orig: string;
  /** Full-form PASSporTs, as published. */
  readonly passports: readonly string[];
  /** When the stored row expires, ms since the epoch: nothing is sent at or after it. */
  readonly expiresAt: number;
}

/** A queue message body, or `null` when it is not one this code sends (it is then dropped). */
export function parseRepublishMessage(body: unknown): RepublishMessage | null {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return null;
  const m = body as Record<string, unknown>;
  if (m.v !== REPUBLISH_MESSAGE_VERSION) return null;
  if (typeof m.peer !== "string" || m.peer.length === 0 || m.peer.length > 512) return null;
  if (typeof m.dest !== "string" || !isCanonicalTn(m.dest)) return null;
  if (typeof m.orig !== "string" || !isCanonicalTn(m.orig)) return null;
  const { passports } = m;
  if (!Array.isArray(passports) || passports.length === 0 || passports.length > MAX_PUBLISH_PASSPORTS)
    return null;
  if (!passports.every((p) => typeof p === "string" && p.length > 0 && p.length <= MAX_PASSPORT_LENGTH)) {
    return null;
  }
  if (typeof m.expiresAt !== "number" || !Number.isFinite(m.expiresAt)) return null;
  return {
    v: 1,
    peer: m.peer,
    dest: m.dest,
    orig: m.orig,
    passports: passports as string[],
    expiresAt: m.expiresAt,
  };
}

/** What to do with a message after the peer answered `status`. */
export type RepublishOutcome = "ack" | "retry" | "drop";

/**
 * 2xx: delivered. 429 and 5xx: the peer is busy or broken, try again. Anything else (3xx, 4xx): the
 * peer refused these PASSporTs or our token for a reason a retry does not change (a bad credential,
 * an unknown peer, a PASSporT it cannot verify), so the message is dropped and the code logged.
 */
export function republishOutcome(status: number): RepublishOutcome {
  if (status >= 200 && status < 300) return "ack";
  if (status === 429 || status >= 500) return "retry";
  return "drop";
}

/** This CPS's own credential for republishing (ATIS_CPS_CREDENTIAL). */
export interface CpsCredential {
  readonly privateKey: CryptoKey;
  /** Chain, leaf first, DER (sent as `x5c`, RFC 7515 §4.1.6). */
  readonly x5c: readonly Uint8Array[];
  /** The SPC it republishes as: the first SPC entry of the leaf's TNAuthList. */
  readonly spc: string;
}

const STD_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function misconfigured(why: string): CpsError {
  return new CpsError("MISCONFIGURED", `Fix the ATIS_CPS_CREDENTIAL secret: ${why}`);
}

/**
 * Parses ATIS_CPS_CREDENTIAL: JSON `{"privateKeyPkcs8": "<base64url DER>", "x5c": ["<base64 DER>",
 * ...]}` (leaf first). The key must be P-256 and belong to the leaf, and the leaf must list an SPC,
 * since a peer checks `spc`/`iss` against its TNAuthList and its ATIS_PEERS. Throws MISCONFIGURED
 * naming what is wrong, never the value.
 */
export async function parseCpsCredential(raw: string): Promise<CpsCredential> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw misconfigured("it is not JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw misconfigured('it is not an object {"privateKeyPkcs8", "x5c"}');
  }
  const { privateKeyPkcs8, x5c } = value as Record<string, unknown>;
  if (typeof privateKeyPkcs8 !== "string") throw misconfigured("privateKeyPkcs8 is missing");
  if (
    !Array.isArray(x5c) ||
    x5c.length === 0 ||
    !x5c.every((c) => typeof c === "string" && STD_BASE64.test(c))
  ) {
    throw misconfigured("x5c is not a list of base64 DER certificates, leaf first");
  }
  const ders = (x5c as string[]).map((c) => Uint8Array.from(atob(c), (ch) => ch.charCodeAt(0)));
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey(
      "pkcs8",
      decodeBase64url(privateKeyPkcs8),
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign"],
    );
  } catch {
    throw misconfigured("privateKeyPkcs8 is not a base64url PKCS#8 P-256 key");
  }
  let leafKey: CryptoKey;
  let spc: string | undefined;
  try {
    const chain = await parseCertificateChain(ders);
    const leaf = chain.certificates[0];
    if (leaf === undefined) throw new Error("no leaf");
    leafKey = await certificatePublicKey(leaf);
    spc = certificateTnAuthList(leaf)?.find((e) => e.type === "spc")?.spc;
  } catch {
    throw misconfigured("x5c does not hold a P-256 STIR certificate chain");
  }
  if (spc === undefined) throw misconfigured("the leaf certificate's TNAuthList lists no SPC");
  // A key that is not the leaf's would make every peer answer 401, forever: refuse it here.
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, probe);
  const matches = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, leafKey, sig, probe);
  if (!matches) throw misconfigured("privateKeyPkcs8 is not the key of the leaf certificate");
  return { privateKey, x5c: ders, spc };
}

/** The parsed credential of the one value this isolate has seen (a secret changes with a deploy). */
let parsed: { raw: string; credential: Promise<CpsCredential> } | undefined;

function cpsCredential(raw: string): Promise<CpsCredential> {
  if (parsed?.raw !== raw) parsed = { raw, credential: parseCpsCredential(raw) };
  return parsed.credential;
}

const loggedOnce = new Set<string>();

function logOnce(event: string, reason: string): void {
  const key = `${event}:${reason}`;
  if (loggedOnce.has(key)) return;
  loggedOnce.add(key);
  logEvent({ event, reason });
}

/** The peers a publish goes to: every configured one except this CPS itself (a misconfiguration). */
function peersOf(config: CpsConfig): readonly AtisPeer[] {
  return config.atisPeers.filter((p) => p.url !== config.cpsOrigin);
}

/**
 * Queues a new publish for every peer (ATIS_PEERS). Called by the publish route after a NEW publish
 * with action `publish` was stored, and awaited before its 201, so a publish that is answered is
 * queued. No peers: nothing. Peers but no usable credential or no queue binding: nothing, logged once
 * (`atis_republish_off`), the publish itself stands. A failed send throws UNAVAILABLE (503).
 */
export async function enqueueRepublish(
  env: Env,
  config: CpsConfig,
  msg: { dest: string; orig: string; passports: string[]; expiresAt: number },
): Promise<void> {
  const peers = peersOf(config);
  if (peers.length === 0) return;
  if (config.atisCredential === "") return logOnce("atis_republish_off", "no_credential");
  const queue = (env as { ATIS_REPUBLISH?: Queue<RepublishMessage> }).ATIS_REPUBLISH;
  if (queue === undefined) return logOnce("atis_republish_off", "no_queue_binding");
  try {
    await cpsCredential(config.atisCredential);
  } catch {
    return logOnce("atis_republish_off", "bad_credential");
  }
  try {
    // send() per peer, not one sendBatch: ten 8 KiB PASSporTs to several peers would pass a batch's
    // total size limit, while each message stays far below the 128 KB per message.
    await Promise.all(
      peers.map((peer) =>
        queue.send(
          {
            v: 1,
            peer: peer.url,
            dest: msg.dest,
            orig: msg.orig,
            passports: [...msg.passports],
            expiresAt: msg.expiresAt,
          },
          { contentType: "json" },
        ),
      ),
    );
  } catch (cause) {
    logEvent({ event: "atis_republish_enqueue_failed", peers: peers.length });
    throw new CpsError("UNAVAILABLE", "The republish queue is unavailable; publish again", { cause });
  }
}

/** A code from a peer's ATIS error body, when it has a well-formed one (logged, never its message). */
async function peerCode(res: Response): Promise<string> {
  try {
    // Bounded: a misbehaving peer's endless error body is not read into memory.
    const bytes = await readLimited(res.body, res.headers.get("content-length"), PEER_ERROR_BODY_BYTES);
    const body = JSON.parse(new TextDecoder().decode(bytes)) as { code?: unknown };
    return typeof body.code === "string" && /^[A-Z][A-Z0-9_]{0,63}$/.test(body.code) ? body.code : "none";
  } catch {
    return "none";
  }
}

/** One try of one message: signs a republish token and POSTs to the peer. */
async function deliver(message: Message<unknown>, config: CpsConfig): Promise<void> {
  const msg = parseRepublishMessage(message.body);
  if (msg === null) {
    message.ack();
    logEvent({ event: "atis_republish_malformed" });
    return;
  }
  const now = Date.now();
  const expired = (reason: string) => {
    message.ack();
    logEvent({ event: "atis_republish_expired", reason, attempts: message.attempts });
  };
  if (now >= msg.expiresAt) return expired("expired");
  const peer = peersOf(config).find((p) => p.url === msg.peer);
  if (peer === undefined) {
    // ATIS_PEERS changed since the publish: that peer is no longer ours to send to.
    message.ack();
    logEvent({ event: "atis_republish_peer_gone" });
    return;
  }
  let credential: CpsCredential;
  try {
    if (config.atisCredential === "") throw new Error("unset");
    credential = await cpsCredential(config.atisCredential);
  } catch {
    message.ack();
    logOnce("atis_republish_off", config.atisCredential === "" ? "no_credential" : "bad_credential");
    return;
  }
  const iat = Math.floor(now / 1000);
  const exp = Math.min(iat + ATIS_MAX_EXP_SECONDS, Math.floor(msg.expiresAt / 1000));
  if (exp <= iat) return expired("expires_within_a_second");
  const retry = (status: number | string) => {
    // A try that could only land after the expiry is not worth making.
    if (Date.now() + RETRY_DELAY_SECONDS * 1000 >= msg.expiresAt) return expired("expires_before_retry");
    message.retry({ delaySeconds: RETRY_DELAY_SECONDS });
    logEvent({ event: "atis_republish_retry", peer: peer.spc, status, attempts: message.attempts });
  };
  const token = await issueAtisToken({
    privateKey: credential.privateKey,
    x5c: credential.x5c,
    audience: peer.audience,
    action: "republish",
    orig: msg.orig,
    dest: msg.dest,
    passports: msg.passports,
    spc: credential.spc,
    iss: credential.spc,
    now: iat,
    exp,
  });
  let res: Response;
  try {
    res = await fetch(`${peer.url}/passports/${msg.dest}/${msg.orig}`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${token}`,
        // The queue message's id, the same on every try: a retry after a lost 201 gets the peer's
        // stored answer instead of a second row (the peer keeps Idempotency-Keys for 600 s).
        ...(IDEMPOTENCY_KEY.test(message.id) ? { "Idempotency-Key": message.id } : {}),
      },
      body: JSON.stringify({ passports: msg.passports }),
      // Never follow a redirect: our token is for this peer's audience only.
      redirect: "manual",
      signal: AbortSignal.timeout(PEER_TIMEOUT_MS),
    });
  } catch {
    return retry("network");
  }
  const outcome = republishOutcome(res.status);
  if (outcome === "ack") {
    await res.body?.cancel();
    message.ack();
    logEvent({
      event: "atis_republish_sent",
      peer: peer.spc,
      status: res.status,
      attempts: message.attempts,
    });
    return;
  }
  if (outcome === "retry") {
    await res.body?.cancel();
    return retry(res.status);
  }
  message.ack();
  logEvent({
    event: "atis_republish_refused",
    peer: peer.spc,
    status: res.status,
    code: await peerCode(res),
    attempts: message.attempts,
  });
}

/**
 * The queue consumer (src/index.ts `queue`): each message is one publish for one peer, acked when the
 * peer took it, dropped when expired or refused for good, retried after RETRY_DELAY_SECONDS when the
 * peer is down or busy. Never throws: an unexpected failure of one message retries that message.
 */
export async function handleRepublishBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  let config: CpsConfig;
  try {
    config = readConfig(env);
  } catch {
    // A var broken by a deploy: nothing can be sent until it is fixed, so wait and try again.
    logOnce("atis_republish_off", "misconfigured");
    batch.retryAll({ delaySeconds: RETRY_DELAY_SECONDS });
    return;
  }
  await Promise.all(
    batch.messages.map(async (message) => {
      try {
        await deliver(message, config);
      } catch {
        logEvent({ event: "atis_republish_failed", attempts: message.attempts });
        message.retry({ delaySeconds: RETRY_DELAY_SECONDS });
      }
    }),
  );
}
