/**
 * The client's `watch()` (src/client/watch.ts) against the real app in workerd (RFC 8816 §5.5, §8.2):
 * delivery, de-duplication of the live blobs a reconnect replays, and reconnecting after the server
 * drops the socket.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type WatchConnectInit, type WatchFrame, type WebSocketLike, watch } from "../../src/client/watch.js";
import type { PassportQueue } from "../../src/durable-objects/passport-queue.js";
import { newBlobId } from "../../src/stir/blob-id.js";
import { ENVELOPE_LENGTH, openPassport } from "../../src/stir/envelope.js";
import { MAX_UNACKED_CHARS, SLOW_READER_CLOSE_CODE } from "../../src/stir/push-frames.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { blockQueueOfTn } from "../../src/storage/objects.js";
import { RFC8816_EXAMPLE_PASSPORT, sealedFor, storeRequest } from "../helpers/cps.js";
import { bearerFor, loadTestPki } from "../helpers/pki.js";
import { BASE, subscribe } from "../helpers/push.js";
import { queueFor } from "../helpers/worker.js";

/** Dials through the app itself (workerd has no loopback listener in tests), with `init.headers`. */
async function connect(url: string, init?: WatchConnectInit): Promise<WebSocketLike> {
  const res = await exports.default.fetch(
    new Request(url.replace(/^ws/, "http"), { headers: { ...init?.headers, Upgrade: "websocket" } }),
  );
  if (!res.webSocket) throw new Error(`upgrade refused: ${res.status}`);
  res.webSocket.accept();
  return res.webSocket as unknown as WebSocketLike;
}

async function store(tn: string, text: string): Promise<string> {
  const res = await exports.default.fetch(storeRequest(BASE, tn, text));
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

async function until(pred: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("watch() (client)", () => {
  it("delivers each id once across a server-side disconnect, and opens the real blobs", async () => {
    const tn = "15550400001";
    const { callee, another } = await sealedFor(tn);
    const frames: WatchFrame[] = [];
    const opened: string[] = [];
    const states: string[] = [];
    const w = watch({
      cps: BASE,
      target: { tn: `+${tn}` },
      connect,
      minBackoffMs: 10,
      maxBackoffMs: 50,
      onStatus: (s) => states.push(s.state),
      onFrame: async (f) => {
        frames.push(f);
        const jws = await openPassport(callee.keyPair, canonicalTn(f.tn!), f.blob).catch(() => null);
        if (jws) opened.push(f.id);
      },
    });
    const first = [await store(tn, await another()), await store(tn, await another())];
    await until(() => first.every((id) => opened.includes(id)));

    // Drop every socket of the number from the server side: the watcher redials and gets the live
    // blobs again, which it must not deliver twice.
    await evictDurableObject(queueFor(tn), { webSockets: "close" });
    await until(() => states.includes("closed"));
    const later = await store(tn, await another());
    await until(() => opened.includes(later));

    expect(opened.sort()).toEqual([...first, later].sort());
    const ids = frames.map((f) => f.id);
    expect(ids.length).toBe(new Set(ids).size);
    // The number's decoys came in the greeting too (at least one; the redial's greeting carries the
    // same live decoys again, which must not be delivered twice) and opened with no key.
    expect(frames.length).toBeGreaterThanOrEqual(opened.length + 1);
    expect(w.delivered).toBe(frames.length);
    expect(
      await openPassport(callee.keyPair, canonicalTn(tn), frames.find((f) => f.id === later)!.blob),
    ).toBe(RFC8816_EXAMPLE_PASSPORT);
    w.close();
    await w.done;
  });

  it("watches a block and retries a refused dial with backoff", async () => {
    let dials = 0;
    const frames: WatchFrame[] = [];
    const w = watch({
      cps: BASE,
      target: { block: "155504002xx" },
      minBackoffMs: 5,
      maxBackoffMs: 20,
      connect: async (url) => {
        dials++;
        if (dials < 3) throw new Error("refused");
        expect(url).toBe(`${BASE.replace(/^http/, "ws")}/cps/blocks/155504002xx/subscribe`);
        return connect(url);
      },
      onFrame: (f) => {
        frames.push(f);
      },
      onError: () => {},
    });
    const { text } = await sealedFor("15550400234");
    const id = await store("15550400234", text);
    await until(() => frames.some((f) => f.id === id));
    expect(dials).toBe(3);
    expect(frames.find((f) => f.id === id)?.tn).toBe("15550400234");
    w.close();
    await w.done;
  });

  // Flow control (src/stir/push-frames.ts): a reader that never acknowledges cannot make the runtime
  // queue bytes for it without bound; watch() acknowledges and is never cut off; filing never fails.
  it("closes a reader that never acknowledges at MAX_UNACKED_CHARS (4008); watch() keeps up", async () => {
    const block = "15550405xxx"; // 1,000 numbers of one index block
    const silent = await subscribe(`/cps/blocks/${block}/subscribe`, { ack: false });
    const closed = new Promise<number>((resolve) =>
      silent.ws.addEventListener("close", (e) => resolve((e as CloseEvent).code)),
    );
    const got = new Set<string>();
    const w = watch({ cps: BASE, target: { block }, connect, onFrame: (f) => void got.add(f.id) });
    await until(() => got.size >= 1 && silent.frames.length >= 1); // both greeted

    const frameChars = silent.frames[0]!.length;
    const count = Math.ceil((1.1 * MAX_UNACKED_CHARS) / frameChars);
    const stub = blockQueueOfTn(env, "15550405000");
    const ids: string[] = [];
    for (let i = 0; i < count; i += 100) {
      const chunk = Array.from({ length: Math.min(100, count - i) }, (_, k) => {
        const tn = `15550405${String((i + k) % 1000).padStart(3, "0")}`;
        const id = newBlobId();
        ids.push(id);
        return stub.add(tn, id, crypto.getRandomValues(new Uint8Array(ENVELOPE_LENGTH)), Date.now() + 60_000);
      });
      expect(await Promise.all(chunk)).toEqual(chunk.map(() => true));
    }
    expect(await closed).toBe(SLOW_READER_CLOSE_CODE);
    // It was cut off near the cap, not before: everything after its greeting (not held against it)
    // up to ~MAX_UNACKED_CHARS reached it.
    const afterGreeting = silent.frames.slice(silent.messages[0]).reduce((n, f) => n + f.length, 0);
    expect(afterGreeting).toBeGreaterThan(0.9 * MAX_UNACKED_CHARS);
    expect(afterGreeting).toBeLessThanOrEqual(MAX_UNACKED_CHARS);
    await until(() => ids.every((id) => got.has(id)), 30_000);
    w.close();
    await w.done;
    // A late subscriber's greeting (every live blob, more than the cap) is not held against it.
    const late = new Set<string>();
    const again = watch({ cps: BASE, target: { block }, connect, onFrame: (f) => void late.add(f.id) });
    await until(() => ids.every((id) => late.has(id)), 30_000);
    again.close();
    await again.done;
  }, 60_000);
  // Finding 8 (issue 13): the callee's own watch, authenticated, gets in on a number full of
  // anonymous sockets, and redials with a fresh token each time (tokens are single use).
  it("with `authorization`, watch() gets in on a full number and redials with a fresh token", async () => {
    const tn = "15550400901";
    await runInDurableObject(queueFor(tn), (i: PassportQueue) => {
      Object.assign((i as unknown as { admission: object }).admission, {
        maxSubscribers: 2,
        maxAnonymous: 2,
      });
    });
    const anonymous = [await subscribe(`/cps/${tn}/subscribe`), await subscribe(`/cps/${tn}/subscribe`)];
    const pki = loadTestPki(env.TEST_PKI);
    const callee = await pki.issue({ tnAuthList: [{ type: "one", tn }] });
    let tokens = 0;
    const states: string[] = [];
    const got = new Set<string>();
    const w = watch({
      cps: BASE,
      target: { tn },
      connect,
      minBackoffMs: 10,
      maxBackoffMs: 50,
      authorization: () => {
        tokens++;
        return bearerFor(callee, "push:subscribe");
      },
      onStatus: (s) => states.push(s.state),
      onFrame: (f) => void got.add(f.id),
    });
    const { another } = await sealedFor(tn);
    const first = await store(tn, await another());
    await until(() => got.has(first));
    expect(anonymous.filter((s) => s.closedWith === 4029)).toHaveLength(1);
    await evictDurableObject(queueFor(tn), { webSockets: "close" });
    await until(() => states.includes("closed"));
    const later = await store(tn, await another());
    await until(() => got.has(later));
    expect(tokens).toBeGreaterThanOrEqual(2);
    w.close();
    await w.done;
  });
});
