/**
 * Push against an active adversary (issue 13, findings 7 and 8; docs/push-and-blocks.md "Flow
 * control" and "Admission"). Real workerd objects and sockets through the app.
 *
 * - #7: the slow-reader cap must rest on what the CPS observes. An acknowledgement names a `mark`
 *   the CPS sent to that one socket after the bytes it acknowledges, so only a client that read them
 *   can name it. A client that never reads and forges acks (a huge count, ids of frames copied from
 *   a second, reading socket or from a list, another socket's marks) is closed with 4008 at the cap;
 *   a real reader keeps its socket; hibernation does not reset the count.
 * - #8: anonymous sockets get a bounded share of an object and a bounded greeting budget; the callee,
 *   authenticated with its STIR credential (`Authorization: Bearer`, action `push:subscribe`), gets
 *   in however many anonymous sockets there are (evicting one when the object is full).
 *
 * Where a limit would need hundreds of sockets, it is lowered on the one object under test (white box,
 * through runInDurableObject), as push-pacing.test.ts lowers the send budget.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { BlockQueue } from "../../src/durable-objects/block-queue.js";
import type { PassportQueue } from "../../src/durable-objects/passport-queue.js";
import { newBlobId } from "../../src/stir/blob-id.js";
import { ENVELOPE_LENGTH } from "../../src/stir/envelope.js";
import { MARK_EVERY_CHARS, MAX_UNACKED_CHARS, SLOW_READER_CLOSE_CODE } from "../../src/stir/push-frames.js";
import { blockQueueOfTn } from "../../src/storage/objects.js";
import { sealedFor, storeRequest } from "../helpers/cps.js";
import { bearerFor, loadTestPki } from "../helpers/pki.js";
import { BASE, SubscribeRefused, type Subscription, subscribe, subscribeRequest } from "../helpers/push.js";
import { fetchApp, queueFor } from "../helpers/worker.js";

const pki = loadTestPki(env.TEST_PKI);

async function waitFor(pred: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** Files `count` random blobs in the index block of `prefix` (8 digits), 100 at a time. */
async function fill(prefix: string, count: number): Promise<string[]> {
  const stub = blockQueueOfTn(env, `${prefix}000`);
  const ids: string[] = [];
  for (let i = 0; i < count; i += 100) {
    const chunk = Array.from({ length: Math.min(100, count - i) }, (_, k) => {
      const id = newBlobId();
      ids.push(id);
      const tn = `${prefix}${String((i + k) % 1000).padStart(3, "0")}`;
      return stub.add(tn, id, crypto.getRandomValues(new Uint8Array(ENVELOPE_LENGTH)), Date.now() + 60_000);
    });
    expect(await Promise.all(chunk)).toEqual(chunk.map(() => true));
  }
  return ids;
}

/**
 * A client that never reads its own socket but acknowledges as generously as it can: after every
 * message its reading sibling gets, a huge count, the id of that message's last frame, and the
 * sibling's marks; and once, every id a block list shows.
 */
function forgeAcks(forger: Subscription, sibling: Subscription, listed: string[]): void {
  const send = (text: string) => {
    try {
      forger.ws.send(text);
    } catch {
      // closed
    }
  };
  for (const id of listed) send(`ack ${id}`);
  sibling.ws.addEventListener("message", (e) => {
    const data = typeof e.data === "string" ? e.data : "";
    send("ack 999999999999999");
    const mark = /^mark ([0-9a-f]{32})$/.exec(data);
    if (mark) send(`ack ${mark[1]}`);
    else send(`ack ${(JSON.parse(data.slice(data.lastIndexOf("\n") + 1)) as { id: string }).id}`);
  });
}

interface Admission {
  maxSubscribers: number;
  maxAnonymous: number;
  greetingCharsPerS: number;
  greetingBurstChars: number;
}
type WithAdmission = { admission?: Admission };

/** Lowers the admission limits of one object (no effect on code without them). */
const limit = (
  stub: DurableObjectStub<PassportQueue> | DurableObjectStub<BlockQueue>,
  set: Partial<Admission>,
) =>
  runInDurableObject(stub as DurableObjectStub<PassportQueue>, (i: PassportQueue) => {
    const a = (i as unknown as WithAdmission).admission;
    if (a) Object.assign(a, set);
  });

const upgrade = (path: string, headers: Record<string, string> = {}) =>
  exports.default.fetch(subscribeRequest(path, headers));

describe("adversary #7: the slow-reader cap trusts only what the CPS observes", () => {
  it("a never-reading client that forges acks is closed (4008) at MAX_UNACKED; a real reader keeps its socket", async () => {
    const block = "15550411xxx";
    const reader = await subscribe(`/cps/blocks/${block}/subscribe`);
    const forger = await subscribe(`/cps/blocks/${block}/subscribe`, { ack: false });
    await waitFor(() => reader.frames.length >= 1 && forger.frames.length >= 1);
    const early = await fill("15550411", 20); // ids a list shows: the forger acks them too
    const listed = (
      (await (await fetchApp(`${BASE}/cps/blocks/${block}/ppts`)).json()) as { passports: { id: string }[] }
    ).passports.map((p) => p.id);
    expect(listed).toEqual(expect.arrayContaining(early));
    forgeAcks(forger, reader, listed);

    const frameChars = reader.frames[0]!.length;
    const ids = await fill("15550411", Math.ceil((1.1 * MAX_UNACKED_CHARS) / frameChars));
    await waitFor(() => forger.closedWith !== null, 10_000);
    expect(forger.closedWith, "a forger of acks must be cut off at the cap").toBe(SLOW_READER_CLOSE_CODE);
    // Cut off near the cap, not before: what came after its greeting reached ~MAX_UNACKED_CHARS.
    const afterGreeting = forger.frames.slice(forger.messages[0]).reduce((n, f) => n + f.length, 0);
    expect(afterGreeting).toBeGreaterThan(0.9 * MAX_UNACKED_CHARS);
    expect(afterGreeting).toBeLessThanOrEqual(MAX_UNACKED_CHARS);
    // The reader acknowledged each mark it read and got every blob on the same socket.
    expect(await waitFor(() => ids.every((id) => reader.ids().has(id)), 20_000)).toBe(true);
    expect(reader.closedWith).toBeNull();
    // A mark after each MARK_EVERY_CHARS or more (a message is never split): ~4.6 Mi characters here.
    expect(reader.marks.length).toBeGreaterThanOrEqual(
      Math.floor(MAX_UNACKED_CHARS / (2 * MARK_EVERY_CHARS)),
    );
    expect(new Set(reader.marks).size).toBe(reader.marks.length);
    reader.close();
  }, 60_000);

  it("hibernation does not reset the count: a silent socket is closed at the cap across an eviction", async () => {
    const block = "15550421xxx"; // another index block (1555042) than the test above
    const silent = await subscribe(`/cps/blocks/${block}/subscribe`, { ack: false });
    await waitFor(() => silent.frames.length >= 1);
    const frameChars = silent.frames[0]!.length;
    const half = Math.ceil((0.6 * MAX_UNACKED_CHARS) / frameChars);
    await fill("15550421", half);
    await waitFor(() => silent.frames.length >= half + 1);
    // The object forgets its memory; the socket and its attachment stay.
    await evictDurableObject(blockQueueOfTn(env, "15550421000"));
    await fill("15550421", half);
    await waitFor(() => silent.closedWith !== null, 10_000);
    expect(silent.closedWith, "the count must survive hibernation").toBe(SLOW_READER_CLOSE_CODE);
    const afterGreeting = silent.frames.slice(silent.messages[0]).reduce((n, f) => n + f.length, 0);
    expect(afterGreeting).toBeLessThanOrEqual(MAX_UNACKED_CHARS);
  }, 60_000);
});

describe("adversary #8: anonymous clients cannot lock the callee out of push", () => {
  it("a number full of anonymous sockets still admits the callee's authenticated subscription", async () => {
    const tn = "15550413001";
    const stub = queueFor(tn);
    await limit(stub, { maxSubscribers: 6, maxAnonymous: 4 });
    const anonymous: Subscription[] = [];
    let refused: Response | null = null;
    // Until refused (on code without a lowered limit: the real 1,000).
    for (let i = 0; i < 1_100 && !refused; i++) {
      const res = await upgrade(`/cps/${tn}/subscribe`);
      if (res.status === 101) {
        res.webSocket!.accept();
        anonymous.push({ ws: res.webSocket! } as Subscription);
      } else refused = res;
    }
    expect(refused?.status).toBe(429);
    expect(refused?.headers.get("Retry-After")).toBeTruthy();
    expect(((await refused!.json()) as { code: string }).code).toBe("TOO_MANY_SUBSCRIBERS");

    const callee = await pki.issue({ tnAuthList: [{ type: "one", tn }] });
    const res = await upgrade(`/cps/${tn}/subscribe`, {
      Authorization: await bearerFor(callee, "push:subscribe"),
    });
    expect(res.status, "the callee's authenticated subscribe must get in").toBe(101);
    res.webSocket!.accept();
    // And it is pushed to like any subscriber.
    const frames: string[] = [];
    res.webSocket!.addEventListener("message", (e) => frames.push(e.data as string));
    const { text } = await sealedFor(tn);
    const stored = await fetchApp(storeRequest(BASE, tn, text));
    const { id } = (await stored.json()) as { id: string };
    expect(await waitFor(() => frames.some((f) => f.includes(id)))).toBe(true);
    res.webSocket!.close(1000);
    for (const s of anonymous) s.ws.close(1000);
  }, 120_000);

  it("when every slot is taken, the callee evicts an anonymous socket (4029), never another callee", async () => {
    const tn = "15550413002";
    const stub = queueFor(tn);
    await limit(stub, { maxSubscribers: 3, maxAnonymous: 3 });
    const anonymous = await Promise.all([1, 2, 3].map(() => subscribe(`/cps/${tn}/subscribe`)));
    expect((await upgrade(`/cps/${tn}/subscribe`)).status).toBe(429);
    const callee = await pki.issue({ tnAuthList: [{ type: "one", tn }] });
    const callees: Subscription[] = [];
    for (let i = 0; i < 3; i++) {
      callees.push(
        await subscribe(`/cps/${tn}/subscribe`, {
          headers: { Authorization: await bearerFor(callee, "push:subscribe") },
        }),
      );
      expect(await waitFor(() => anonymous.filter((s) => s.closedWith !== null).length === i + 1)).toBe(true);
    }
    expect(anonymous.map((s) => s.closedWith)).toEqual([4029, 4029, 4029]);
    // Full of callees: a fourth is refused, and no callee was closed to make room.
    const res = await upgrade(`/cps/${tn}/subscribe`, {
      Authorization: await bearerFor(callee, "push:subscribe"),
    });
    expect(res.status).toBe(429);
    expect(callees.map((s) => s.closedWith)).toEqual([null, null, null]);
    for (const s of callees) s.close();
  });

  it("a block's callee authenticates with a credential covering the block", async () => {
    const block = "155504300xx"; // index block 1555043, used by no other test here
    await limit(blockQueueOfTn(env, "15550430000"), { maxSubscribers: 2, maxAnonymous: 1 });
    const anon = await subscribe(`/cps/blocks/${block}/subscribe`);
    expect((await upgrade(`/cps/blocks/${block}/subscribe`)).status).toBe(429);
    const centre = await pki.issue({ tnAuthList: [{ type: "range", start: "15550430000", count: 100 }] });
    const sub = await subscribe(`/cps/blocks/${block}/subscribe`, {
      headers: { Authorization: await bearerFor(centre, "push:subscribe") },
    });
    expect(await waitFor(() => sub.frames.length >= 1)).toBe(true);
    // A credential for one number of the block does not speak for the block.
    const one = await pki.issue({ tnAuthList: [{ type: "one", tn: "15550430001" }] });
    const partial = await upgrade(`/cps/blocks/${block}/subscribe`, {
      Authorization: await bearerFor(one, "push:subscribe"),
    });
    expect(partial.status).toBe(403);
    expect(((await partial.json()) as { code: string }).code).toBe("CERT_NOT_AUTHORISED");
    sub.close();
    anon.close();
  });

  it.each([
    ["a credential for another number", "other", 403, "CERT_NOT_AUTHORISED"],
    ["the wrong action", "action", 403, "AUTH_ACTION"],
    ["a token that is not a JWS", "garbage", 401, "AUTH_MALFORMED"],
  ])("an upgrade with %s is refused, not admitted anonymously", async (_name, kind, status, code) => {
    const tn = "15550413003";
    const other = await pki.issue({ tnAuthList: [{ type: "one", tn: "15550413999" }] });
    const own = await pki.issue({ tnAuthList: [{ type: "one", tn }] });
    const authorization =
      kind === "other"
        ? await bearerFor(other, "push:subscribe")
        : kind === "action"
          ? await bearerFor(own, "keys:put")
          : "Bearer not-a-token";
    const res = await upgrade(`/cps/${tn}/subscribe`, { Authorization: authorization });
    expect(res.status).toBe(status);
    expect(res.webSocket).toBeNull();
    expect(((await res.json()) as { code: string }).code).toBe(code);
  });

  it("greetings to anonymous subscribers are bounded per object; the callee's are not refused", async () => {
    const tn = "15550413004";
    const { another } = await sealedFor(tn);
    for (let i = 0; i < 20; i++) {
      const res = await fetchApp(storeRequest(BASE, tn, await another()));
      expect(res.status).toBe(201);
    }
    const burst = 64 * 1024;
    const perS = 16 * 1024;
    await limit(queueFor(tn), { greetingBurstChars: burst, greetingCharsPerS: perS });
    const started = Date.now();
    let greeted = 0;
    let refused: Response | null = null;
    const opened: Subscription[] = [];
    for (let i = 0; i < 40; i++) {
      try {
        const s = await subscribe(`/cps/${tn}/subscribe`);
        opened.push(s);
        await waitFor(() => s.messages.length >= 1);
        greeted += s.chars;
        s.close();
      } catch (err) {
        // The refusal itself, not a second request: the budget refills while a slow machine retries.
        refused = err instanceof SubscribeRefused ? err.response : null;
        break;
      }
    }
    const elapsed = (Date.now() - started) / 1000;
    const greeting = opened[0]!.chars; // 20 live blobs and the greeting dummies: ~30k characters
    expect(refused, "anonymous greetings must run out of budget").not.toBeNull();
    expect(refused!.status).toBe(429);
    expect(Number(refused!.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    // What went out is bounded by the budget (one greeting may overdraw it).
    expect(greeted).toBeLessThanOrEqual(burst + perS * elapsed + greeting);
    // The callee, authenticated, is greeted whatever the anonymous budget.
    const callee = await pki.issue({ tnAuthList: [{ type: "one", tn }] });
    const sub = await subscribe(`/cps/${tn}/subscribe`, {
      headers: { Authorization: await bearerFor(callee, "push:subscribe") },
    });
    expect(await waitFor(() => sub.frames.length >= 21)).toBe(true);
    sub.close();
  });
});
