/**
 * Push client for the VS side (RFC 8816 §5.5, §8.2): watch one number or a number block at a CPS and
 * hand every pushed blob to a callback, reconnecting with jittered exponential backoff and dropping
 * ids already seen (a reconnect replays every live blob, so duplicates are expected; gaps are not).
 *
 * Opening and verifying is the caller's business (the callback): the stream also carries dummies,
 * which open with no key, exactly as on `GET /cps/{tn}/ppts`. Runs on Node >= 22, browsers and
 * Workers with the global `WebSocket`; on Node 20 pass `connect` (e.g. undici's `WebSocket`).
 *
 * `authorization` makes it the callee's subscription (docs/push-and-blocks.md "Admission"): each dial
 * sends `Authorization: Bearer <credential token>` (action `push:subscribe`, a fresh token per dial:
 * tokens are single use), which the CPS admits however many anonymous sockets there are. Request
 * headers need a WebSocket that can send them: undici's (Node's global one) can, browsers cannot.
 */
import { decodeEnvelope } from "../stir/envelope.js";
import { formatBlock } from "../stir/number-blocks.js";
import { parseBlockQuery } from "../stir/push-blocks.js";
import { ackMessage, parseFrames, parseMark } from "../stir/push-frames.js";
import { canonicalTn } from "../stir/tn.js";
import { StirClientError } from "./errors.js";

/** One pushed blob. `tn` is the called number (always sent by this CPS; needed to open block frames). */
export interface WatchFrame {
  readonly id: string;
  readonly blob: Uint8Array;
  readonly tn?: string;
}

/** A number (any spelling the CPS accepts) or a block such as `120255501xx` (at most 4 open digits). */
export type WatchTarget = { readonly tn: string } | { readonly block: string };

/** The part of the WHATWG WebSocket this client uses. */
export interface WebSocketLike {
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close" | "error" | "open", listener: (event: unknown) => void): void;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface WatchStatus {
  readonly state: "open" | "closed";
  /** Consecutive failed attempts so far. */
  readonly attempt: number;
  /** Wait before the next attempt (for `closed`). */
  readonly retryInMs?: number;
}

export interface WatchOptions {
  /** CPS base URL, e.g. `https://cps.example.com`. */
  readonly cps: string | URL;
  readonly target: WatchTarget;
  /** Called once per distinct id. A thrown error or rejection goes to `onError`, never stops the watch. */
  readonly onFrame: (frame: WatchFrame) => void | Promise<void>;
  readonly onError?: (error: unknown) => void;
  readonly onStatus?: (status: WatchStatus) => void;
  /** Stops the watch (as does `close()`). */
  readonly signal?: AbortSignal;
  /**
   * Opens a socket; defaults to `new WebSocket(url)`, or `new WebSocket(url, { headers })` with
   * `authorization` (undici's extension, Node's global WebSocket). A custom `connect` must send
   * `init.headers` with the upgrade when given.
   */
  readonly connect?: (url: string, init?: WatchConnectInit) => WebSocketLike | Promise<WebSocketLike>;
  /**
   * The `Authorization` value for each dial, e.g. `Bearer <credential token>` with action
   * `push:subscribe` (called once per dial: a token is single use). Omit for an anonymous watch.
   */
  readonly authorization?: () => string | Promise<string>;
  /** Backoff bounds (full jitter): default 250 ms doubling up to 30 s. */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How long an id is remembered for de-duplication: default 180 s (three 60 s TTLs). */
  readonly dedupWindowMs?: number;
  /** Keep-alive "ping" interval; a socket silent for two intervals is dropped and redialled. 0 = off. */
  readonly pingIntervalMs?: number;
  /**
   * Refuse to watch (`RELAY_REQUIRED`): a WebSocket cannot go through an Oblivious HTTP relay, so a
   * client that must hide its address from the CPS polls through the relay instead (docs/ohttp.md).
   */
  readonly requireRelay?: boolean;
  /**
   * Decoy subscriptions (RFC 8816 §6.2 "numbers that they do not own"; src/client/decoys.ts): the
   * watch also subscribes to these targets, in a random order around its own, and drops their frames,
   * so the CPS sees several subscriptions and not which one is the callee's. Anonymous watches only:
   * with `authorization` the CPS knows the callee's numbers from its credential anyway.
   */
  readonly decoys?: readonly WatchTarget[];
}

/** What `connect` must send with the upgrade. */
export interface WatchConnectInit {
  readonly headers: Readonly<Record<string, string>>;
}

export interface Watcher {
  /** Settles when the watch is closed. */
  readonly done: Promise<void>;
  close(): void;
  /** Distinct frames delivered so far. */
  readonly delivered: number;
}

/** The `ws:`/`wss:` URL of a target's subscription. */
export function subscribeUrl(cps: string | URL, target: WatchTarget): string {
  const path =
    "tn" in target
      ? `/cps/${canonicalTn(target.tn)}/subscribe`
      : `/cps/blocks/${formatBlock(parseBlockQuery(target.block))}/subscribe`;
  const url = new URL(path, cps);
  url.protocol = url.protocol === "https:" ? "wss:" : url.protocol === "http:" ? "ws:" : url.protocol;
  return url.toString();
}

/** The frames of one message (one or more, one per line: the CPS batches overlapping stores). */
function framesOf(data: string): WatchFrame[] {
  return parseFrames(data).flatMap((f) => {
    try {
      const blob = decodeEnvelope(f.blob);
      return [f.tn === undefined ? { id: f.id, blob } : { id: f.id, blob, tn: f.tn }];
    } catch {
      return []; // not an envelope: dropped
    }
  });
}

/**
 * Watches a number or block and calls `onFrame` once per distinct pushed blob until closed.
 *
 * @example
 * const w = watch({
 *   cps: "https://cps.example.com",
 *   target: { block: "1202555xxxx" },
 *   onFrame: async ({ id, tn, blob }) => {
 *     const jws = await openPassport(key, canonicalTn(tn!), blob).catch(() => null); // dummies fail
 *     if (jws) console.log(id, (await verifyPassport(jws, resolveKey)).claims.orig);
 *   },
 * });
 * // later: w.close(); await w.done;
 */
export function watch(options: WatchOptions): Watcher {
  if (options.requireRelay) {
    throw new StirClientError(
      "RELAY_REQUIRED",
      "Push (a WebSocket) cannot go through an Oblivious HTTP relay; poll (verify) through the relay instead",
    );
  }
  if (options.decoys?.length && options.authorization) {
    throw new TypeError("Decoy subscriptions hide nothing from a CPS that sees the callee's credential");
  }
  // The own subscription dials at a random position among the decoys' (each dials when created).
  const decoyTargets = options.decoys ?? [];
  const before = Math.floor(
    (crypto.getRandomValues(new Uint32Array(1))[0]! / 2 ** 32) * (decoyTargets.length + 1),
  );
  const decoyWatch = (target: WatchTarget) => {
    const { onStatus: _, decoys: __, ...rest } = options;
    return watch({ ...rest, target, onFrame: () => undefined });
  };
  const decoyWatchers = decoyTargets.slice(0, before).map(decoyWatch);
  const url = subscribeUrl(options.cps, options.target);
  const minBackoff = options.minBackoffMs ?? 250;
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  const dedupWindow = options.dedupWindowMs ?? 180_000;
  const pingInterval = options.pingIntervalMs ?? 30_000;
  const connect =
    options.connect ??
    ((u: string, init?: WatchConnectInit) => {
      const Ctor = (globalThis as { WebSocket?: new (u: string, init?: WatchConnectInit) => WebSocketLike })
        .WebSocket;
      if (!Ctor) throw new TypeError("No global WebSocket here: pass `connect` to watch()");
      // Only undici takes a second argument with headers; browsers would read it as protocols.
      return init ? new Ctor(u, init) : new Ctor(u);
    });

  const seen = new Map<string, number>(); // id -> first seen (ms); insertion order = age order
  let delivered = 0;
  let attempt = 0;
  let closed = false;
  let socket: WebSocketLike | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pinger: ReturnType<typeof setInterval> | undefined;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });

  const report = (err: unknown) => {
    try {
      options.onError?.(err);
    } catch {
      // a failing error hook must not stop the watch
    }
  };

  const forget = (now: number) => {
    for (const [id, at] of seen) {
      if (now - at < dedupWindow) break;
      seen.delete(id);
    }
  };

  const deliver = (frame: WatchFrame) => {
    const now = Date.now();
    forget(now);
    if (seen.has(frame.id)) return;
    seen.set(frame.id, now);
    delivered++;
    try {
      const r = options.onFrame(frame);
      if (r && typeof (r as Promise<void>).then === "function") (r as Promise<void>).catch(report);
    } catch (err) {
      report(err);
    }
  };

  const schedule = () => {
    if (closed) return;
    const ceiling = Math.min(maxBackoff, minBackoff * 2 ** Math.min(attempt, 20));
    const delay = Math.floor(Math.random() * ceiling);
    attempt++;
    options.onStatus?.({ state: "closed", attempt, retryInMs: delay });
    timer = setTimeout(dial, delay);
  };

  async function dial(): Promise<void> {
    if (closed) return;
    let ws: WebSocketLike;
    try {
      ws = options.authorization
        ? await connect(url, { headers: { Authorization: await options.authorization() } })
        : await connect(url);
    } catch (err) {
      report(err);
      schedule();
      return;
    }
    if (closed) {
      ws.close(1000, "closed");
      return;
    }
    socket = ws;
    let ended = false;
    let heardAt = Date.now();
    const end = () => {
      if (ended) return;
      ended = true;
      if (pinger) clearInterval(pinger);
      pinger = undefined;
      if (socket === ws) socket = null;
      schedule();
    };
    ws.addEventListener("message", (event) => {
      heardAt = Date.now();
      if (event.data === "pong") return;
      if (typeof event.data !== "string") return;
      // Flow control (push-frames.ts): answering a mark proves we read everything before it, so
      // the CPS keeps sending.
      const mark = parseMark(event.data);
      if (mark !== null) {
        try {
          ws.send(ackMessage(mark));
        } catch {
          // closing: the reconnect starts afresh
        }
        return;
      }
      const frames = framesOf(event.data);
      if (frames.length === 0) return; // not ours to judge further: malformed frames are dropped
      if (attempt > 0) {
        attempt = 0; // the connection works: the next failure starts the backoff afresh
        options.onStatus?.({ state: "open", attempt });
      }
      for (const frame of frames) deliver(frame);
    });
    ws.addEventListener("open", () => options.onStatus?.({ state: "open", attempt }));
    ws.addEventListener("close", end);
    ws.addEventListener("error", (err) => {
      report(err);
      try {
        ws.close(1000, "error");
      } catch {
        // already closed
      }
      end();
    });
    if (pingInterval > 0) {
      pinger = setInterval(() => {
        if (Date.now() - heardAt > 2 * pingInterval) {
          try {
            ws.close(4000, "silent");
          } catch {
            // already closed
          }
          end();
          return;
        }
        try {
          ws.send("ping");
        } catch {
          // the close event follows
        }
      }, pingInterval);
    }
  }

  const close = () => {
    if (closed) return;
    closed = true;
    for (const d of decoyWatchers) d.close();
    if (timer) clearTimeout(timer);
    if (pinger) clearInterval(pinger);
    try {
      socket?.close(1000, "done");
    } catch {
      // already closed
    }
    socket = null;
    resolveDone();
  };
  options.signal?.addEventListener("abort", close, { once: true });
  if (options.signal?.aborted) close();
  else void dial();
  if (!closed) decoyWatchers.push(...decoyTargets.slice(before).map(decoyWatch));

  return {
    done,
    close,
    get delivered() {
      return delivered;
    },
  };
}
