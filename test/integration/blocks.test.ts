/**
 * Block retrieval and block subscriptions (RFC 8816 §6.2 "a range or prefix of numbers", §5.5 call
 * centres): one BlockQueue per 10^4 index block answers, in workerd with real Durable Objects.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ENVELOPE_TEXT_LENGTH } from "../../src/stir/envelope.js";
import { sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, subscribe } from "../helpers/push.js";
import { fetchApp } from "../helpers/worker.js";

interface BlockBody {
  passports: { id: string; tn: string; blob: string }[];
  truncated?: boolean;
}

async function store(tn: string, text: string): Promise<string> {
  const res = await fetchApp(storeRequest(BASE, tn, text));
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

async function listBlock(block: string): Promise<BlockBody> {
  const res = await fetchApp(`${BASE}/cps/blocks/${block}/ppts`);
  expect(res.status).toBe(200);
  expect(res.headers.get("Cache-Control")).toBe("no-store");
  return res.json();
}

describe("GET /cps/blocks/{block}/ppts", () => {
  it("returns the blobs of every number in the block, none outside it, and at least one dummy", async () => {
    const { text } = await sealedFor("12025550100");
    const inside = ["12025550100", "12025550142", "12025550199"];
    const outside = ["12025550200", "1202555010", "120255501000"]; // next sub-block, 10 and 12 digits
    const ids = new Map<string, string>();
    for (const tn of [...inside, ...outside]) ids.set(await store(tn, text), tn);

    const { passports } = await listBlock("120255501xx");
    const byId = new Map(passports.map((p) => [p.id, p]));
    for (const [id, tn] of ids) {
      if (inside.includes(tn)) expect(byId.get(id)?.tn).toBe(tn);
      else expect(byId.has(id)).toBe(false);
    }
    const dummies = passports.filter((p) => !ids.has(p.id));
    expect(dummies.length).toBeGreaterThanOrEqual(1);
    for (const p of passports) {
      expect(p.tn).toMatch(/^120255501[0-9]{2}$/);
      expect(p.blob).toHaveLength(ENVELOPE_TEXT_LENGTH);
    }
  });

  it("answers a 4-open block from one index block, across its sub-blocks", async () => {
    const { text } = await sealedFor("14155550000");
    const tns = ["14155550000", "14155551234", "14155559999"];
    const ids = await Promise.all(tns.map((tn) => store(tn, text)));
    const { passports } = await listBlock("1415555xxxx");
    const listed = new Set(passports.map((p) => p.id));
    for (const id of ids) expect(listed.has(id)).toBe(true);
    expect(passports.length).toBeGreaterThan(ids.length);
    // Filed once each, in the one object named by the digits minus the last four.
    expect(await env.BLOCK_QUEUE.getByName("block:1415555").liveCount()).toBe(3);
  });

  it("serves short numbers (fewer than 5 digits) from their length's index block", async () => {
    const { text } = await sealedFor("911");
    const id = await store("911", text);
    const other = await store("9110", text);
    const { passports } = await listBlock("9xx");
    expect(passports.map((p) => p.id)).toContain(id);
    expect(passports.map((p) => p.id)).not.toContain(other);
  });

  it("an empty block still answers with dummies: its cover number's live decoys", async () => {
    const { passports } = await listBlock("1999999xxx");
    expect(passports.length).toBeGreaterThanOrEqual(1);
    expect(new Set(passports.map((p) => p.tn)).size).toBe(1);
    expect(new Set(passports.map((p) => p.id)).size).toBe(passports.length);
  });

  it.each([
    ["no open digit", "12025550100", "INVALID_BLOCK"],
    ["x in the middle", "1202x550100", "INVALID_BLOCK"],
    ["upper-case X", "120255501XX", "INVALID_BLOCK"],
    ["a plus sign", "+120255501xx", "INVALID_BLOCK"],
    ["dots", "1.202.555.01xx", "INVALID_BLOCK"],
    ["only x", "xxxx", "INVALID_BLOCK"],
    ["numbers of 2 digits", "1x", "INVALID_BLOCK"],
    ["numbers of 16 digits", "123456789012345x", "INVALID_BLOCK"],
    ["non-ASCII digits", "١٢٠٢٥٥٥xxxx", "INVALID_BLOCK"],
    ["5 open digits (100,000 numbers)", "120255xxxxx", "BLOCK_TOO_LARGE"],
    ["10 open digits", "1xxxxxxxxxx", "BLOCK_TOO_LARGE"],
  ])("refuses %s with 400", async (_name, block, code) => {
    for (const path of [
      `/cps/blocks/${encodeURIComponent(block)}/ppts`,
      `/cps/blocks/${encodeURIComponent(block)}/subscribe`,
    ]) {
      const res = await fetchApp(`${BASE}${path}`, { headers: { Upgrade: "websocket" } });
      expect(res.status, path).toBe(400);
      expect(res.headers.get("Content-Type")).toBe("application/problem+json");
      expect(((await res.json()) as { code: string }).code).toBe(code);
    }
  });

  it("answers 405 for other methods", async () => {
    for (const path of ["/cps/blocks/120255501xx/ppts", "/cps/blocks/120255501xx/subscribe"]) {
      const res = await fetchApp(`${BASE}${path}`, { method: "POST" });
      expect(res.status).toBe(405);
      expect(res.headers.get("Allow")).toBe("GET");
    }
  });
});

describe("GET /cps/blocks/{block}/subscribe", () => {
  it("pushes live and new blobs of the block's numbers only, each with its number", async () => {
    const { text } = await sealedFor("13035550100");
    const early = await store("13035550101", text);
    const sub = await subscribe("/cps/blocks/130355501xx/subscribe");
    await sub.until((f) => f.some((x) => x.id === early) && f.length >= 2);
    const greeting = sub.frames.filter((f) => f.id !== early);
    expect(greeting.length).toBeGreaterThanOrEqual(1);
    expect(greeting[0]!.tn).toMatch(/^130355501[0-9]{2}$/);

    const foreign = await store("13035550201", text); // same index block, other sub-block
    const mine = await store("13035550177", text);
    await sub.until((f) => f.some((x) => x.id === mine));
    expect(sub.frames.find((x) => x.id === mine)?.tn).toBe("13035550177");
    expect(sub.ids().has(foreign)).toBe(false);
    expect(new Set(sub.frames.map((f) => f.length)).size).toBe(1);
    sub.close();
  });

  it("refuses a plain GET with 426", async () => {
    const res = await fetchApp(`${BASE}/cps/blocks/130355501xx/subscribe`);
    expect(res.status).toBe(426);
  });
});
