/**
 * Privacy invariants at the HTTP + Durable Object layer (docs/design.md "Privacy and security invariants"
 * 1, 2, 4, 6; RFC 8816 §6.2 dummies, §7.5 lifetime, §12 privacy considerations), against the real
 * app in workerd.
 */
import { createExecutionContext, env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { app } from "../../src/app.js";
import { Decoys } from "../../src/dummies/decoys.js";
import { CpsError } from "../../src/errors.js";
import {
  decodeEnvelope,
  ENVELOPE_LENGTH,
  ENVELOPE_TEXT_LENGTH,
  encodeEnvelope,
  generateRecipientKeyPair,
  openPassport,
  type RecipientKeyPair,
} from "../../src/stir/envelope.js";
import { canonicalTn } from "../../src/stir/tn.js";
import { RFC8816_EXAMPLE_PASSPORT, sealedFor, storeRequest } from "../helpers/cps.js";
import { BASE, blockFor, fetchApp, list, liveCountOf } from "../helpers/worker.js";

async function store(tn: string, text: string, headers: Record<string, string> = {}): Promise<string> {
  const req = storeRequest(BASE, tn, text);
  for (const [k, v] of Object.entries(headers)) req.headers.set(k, v);
  const res = await fetchApp(req);
  expect(res.status).toBe(201);
  return (await res.json<{ id: string }>()).id;
}

async function expectOpenFails(key: CryptoKeyPair, tn: string, blob: Uint8Array): Promise<void> {
  await expect(openPassport(key, canonicalTn(tn), blob)).rejects.toSatisfy(
    (e) => e instanceof CpsError && e.code === "ENVELOPE_OPEN_FAILED",
  );
}

describe("docs/design.md invariant 2 / RFC 8816 §6.2: every retrieval answers; one length; a decoy persists for its lifetime, like a real blob, and never comes back", () => {
  const LOOKS = 10_000;
  const EMPTY = "15550200001";
  const REAL = "15550200002";
  const OPEN_SAMPLE = 200;

  it(`${LOOKS} looks at an empty number over ${LOOKS / 100} lifetimes: never empty, each decoy live exactly its TTL and never again, all distinct, none opens`, async () => {
    // The decoys the Worker serves, at simulated times (src/dummies/decoys.ts is a pure function of the
    // secret, number and time): 100 looks per TTL, so every birth and death is seen.
    const ttlMs = 60_000;
    const decoys = new Decoys(env.DECOY_SECRET as string);
    const t0 = Date.now();
    const seen = new Map<string, { first: number; last: number; birth: number; blob: string }>();
    let smallest = Number.POSITIVE_INFINITY;
    const lengths = new Set<number>();
    for (let k = 0; k < LOOKS; k++) {
      const at = t0 + k * (ttlMs / 100);
      const live = await decoys.live(canonicalTn(EMPTY), ttlMs, at);
      smallest = Math.min(smallest, live.length);
      for (const d of live) {
        const text = encodeEnvelope(d.blob);
        lengths.add(text.length);
        const s = seen.get(d.id);
        if (s) {
          expect(s.blob).toBe(text); // the same bytes for its whole life
          expect(s.last).toBe(k - 1); // no gap: once gone, never back
          s.last = k;
        } else {
          seen.set(d.id, { first: k, last: k, birth: d.birth, blob: text });
        }
        expect(d.expiresAt - d.birth).toBe(ttlMs);
        expect(at >= d.birth && at < d.expiresAt).toBe(true);
      }
    }
    expect(smallest).toBeGreaterThanOrEqual(1);
    // ~3 births per TTL over 100 TTLs.
    expect(seen.size).toBeGreaterThan(200);
    expect(new Set([...seen.values()].map((s) => s.blob)).size).toBe(seen.size);
    for (const s of seen.values()) {
      if (s.first > 0 && s.last < LOOKS - 1) expect(s.last - s.first + 1).toBeGreaterThanOrEqual(99);
    }
    expect([...lengths]).toEqual([ENVELOPE_TEXT_LENGTH]);

    // And what the Worker answers now is exactly this schedule's live set.
    const now = (await list(EMPTY)).passports;
    const expected = await decoys.live(canonicalTn(EMPTY), ttlMs);
    expect(now.map((p) => p.id).sort()).toEqual(expected.map((d) => d.id).sort());
    expect(await liveCountOf(EMPTY)).toBe(0);

    // Opening every decoy against every key would cost ~4 HPKE opens per decoy; a spread sample of
    // 200 against 3 fresh keys plus the key a real blob (for another number) was sealed to keeps the
    // test short while any fixed or guessable decoy key would still show.
    const sample = [...seen.values()].slice(0, OPEN_SAMPLE).map((s) => s.blob);
    expect(sample).toHaveLength(OPEN_SAMPLE);
    const { callee, text } = await sealedFor(REAL);
    const keys: RecipientKeyPair[] = [
      callee,
      ...(await Promise.all([1, 2, 3].map(() => generateRecipientKeyPair()))),
    ];
    // Control: the real blob opens with its key, so a failure to open below means something.
    expect(await openPassport(callee.keyPair, canonicalTn(REAL), decodeEnvelope(text))).toBe(
      RFC8816_EXAMPLE_PASSPORT,
    );
    for (const b of sample) {
      const blob = decodeEnvelope(b);
      expect(blob).toHaveLength(ENVELOPE_LENGTH);
      for (const k of keys) await expectOpenFails(k.keyPair, EMPTY, blob);
    }
  }, 90_000);

  it("a number with one real blob and an empty number answer in the same shape", async () => {
    const { text } = await sealedFor(REAL);
    await store(REAL, text);
    const shapeOf = async (tn: string) => {
      const res = await fetchApp(`${BASE}/cps/${tn}/ppts`);
      const body = await res.json<Record<string, unknown>>();
      const items = (body.passports ?? []) as Record<string, string>[];
      return {
        status: res.status,
        headers: [...res.headers.keys()].sort(),
        contentType: res.headers.get("Content-Type"),
        cacheControl: res.headers.get("Cache-Control"),
        keys: Object.keys(body).sort(),
        itemShapes: [
          ...new Set(items.map((p) => JSON.stringify([Object.keys(p).sort(), p.id?.length, p.blob?.length]))),
        ],
        count: items.length,
      };
    };
    for (let i = 0; i < 10; i++) {
      const [withCall, empty] = await Promise.all([shapeOf(REAL), shapeOf("15550200003")]);
      expect(withCall.count).toBeGreaterThanOrEqual(2);
      expect(empty.count).toBeGreaterThanOrEqual(1);
      const { count: _a, ...a } = withCall;
      const { count: _b, ...b } = empty;
      expect(a).toEqual(b);
      expect(a.contentType).toMatch(/^application\/json\b/);
      expect(a.cacheControl).toBe("no-store");
    }
  });
});

describe("docs/design.md invariant 1 / RFC 8816 §12: the DO stores (id, blob, expires_at) and nothing naming the caller", () => {
  const TN = "15550200010";
  const MARKERS = {
    Authorization: "Bearer tok-privacy-marker-8f1e2d",
    "X-Forwarded-For": "203.0.113.77",
    "CF-Connecting-IP": "198.51.100.42",
    "X-Real-IP": "192.0.2.99",
    Forwarded: "for=203.0.113.78",
    "User-Agent": "caller-agent-marker/1.0",
    Cookie: "session=cookie-marker-55aa",
    From: "alice@caller.example",
  };

  it("holds exactly the posted blob bytes, a random id and an expiry; no headers, IPs or tokens", async () => {
    const { text } = await sealedFor(TN);
    const before = Date.now();
    const id = await store(TN, text, MARKERS);
    const after = Date.now();
    const ttlMs = Number(env.PASSPORT_TTL_SECONDS ?? "60") * 1000;

    // The number's blobs live in its index block's BlockQueue, beside its neighbours' (with their number).
    await runInDurableObject(blockFor(TN), async (_obj, state) => {
      const sql = state.storage.sql;
      const objects = sql
        .exec<{ type: string; name: string; tbl_name: string }>(
          "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .toArray()
        .map((o) => ({ ...o }));
      // Per-blob state lives in `blobs` alone, with exactly these columns (`tn`: the called number,
      // which the request path names anyway). Other tables (e.g. push bookkeeping) may exist beside it;
      // no column anywhere may be shaped to hold caller data, and the marker scan below reads every row
      // of every table.
      const userTables = objects.filter((o) => o.type === "table").map((o) => o.name);
      expect(userTables).toContain("blobs");
      const columnsOf = (t: string) =>
        sql
          .exec<{ name: string }>(`PRAGMA table_info("${t}")`)
          .toArray()
          .map((c) => c.name);
      // `digest` holds a tokened store's retry key (16 bytes of a hash of number, blob and K_temp
      // signature), which recognises a true retry; NULL for an untokened store.
      expect(columnsOf("blobs")).toEqual(["id", "tn", "blob", "expires_at", "digest"]);
      for (const t of userTables) {
        for (const c of columnsOf(t)) {
          expect(`${t}.${c}`).not.toMatch(
            /ip|addr|header|token|auth|caller|orig|agent|cookie|forward|sender/i,
          );
        }
        if (t !== "blobs") {
          // No other table keeps one row per stored blob (nothing keyed by or holding the id).
          const dump = JSON.stringify(sql.exec(`SELECT * FROM "${t}"`).toArray());
          expect(dump).not.toContain(id);
        }
      }

      const rows = sql
        .exec<{ id: string; tn: string; blob: ArrayBuffer; expires_at: number; digest: ArrayBuffer }>(
          "SELECT * FROM blobs WHERE tn = ?",
          canonicalTn(TN),
        )
        .toArray();
      expect(rows).toHaveLength(1);
      const row = rows[0]!;
      expect(Object.keys(row).sort()).toEqual(["blob", "digest", "expires_at", "id", "tn"]);
      expect(row.id).toBe(id);
      expect(row.tn).toBe(canonicalTn(TN));
      expect(new Uint8Array(row.blob)).toEqual(decodeEnvelope(text));
      // An untokened store (local dev) has no retry key: nothing derived from the request is kept.
      expect(row.digest).toBeNull();
      expect(row.expires_at).toBeGreaterThanOrEqual(before + ttlMs);
      expect(row.expires_at).toBeLessThanOrEqual(after + ttlMs);

      // Invariant 1: ciphertext only; the plaintext PASSporT appears nowhere in the stored bytes.
      const storedText = new TextDecoder().decode(row.blob);
      expect(storedText).not.toContain(RFC8816_EXAMPLE_PASSPORT.slice(0, 24));

      // Key-value storage is unused, and nothing anywhere (all tables, every column) names the caller.
      expect((await state.storage.list()).size).toBe(0);
      const everything: string[] = [];
      const tables = sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .toArray()
        .map((t) => t.name);
      for (const t of tables) {
        try {
          for (const r of sql.exec(`SELECT * FROM "${t}"`).toArray()) {
            for (const v of Object.values(r)) {
              everything.push(v instanceof ArrayBuffer ? new TextDecoder().decode(v) : String(v));
            }
          }
        } catch {
          // Internal tables workerd does not let us read hold nothing we wrote.
        }
      }
      const dump = everything.join("\n");
      expect(dump).toContain(id); // control: the scan did read the stored row
      for (const marker of [...Object.values(MARKERS), "tok-privacy-marker", "203.0.113"]) {
        expect(dump).not.toContain(marker);
      }
    });
  });
});

describe("docs/design.md invariant 4 / RFC 8816 §7.5: nothing is served after its TTL", () => {
  async function setExpiry(tn: string, id: string, at: number): Promise<void> {
    const found = await runInDurableObject(blockFor(tn), (_obj, state) => {
      const sql = state.storage.sql;
      sql.exec("UPDATE blobs SET expires_at = ? WHERE id = ? AND tn = ?", at, id, canonicalTn(tn));
      return sql
        .exec<{ n: number }>(
          "SELECT count(*) AS n FROM blobs WHERE id = ? AND tn = ? AND expires_at = ?",
          id,
          canonicalTn(tn),
          at,
        )
        .one().n;
    });
    expect(found).toBe(1);
  }
  const served = async (tn: string, id: string) => {
    const listed = (await list(tn)).passports.some((p) => p.id === id);
    const one = await fetchApp(`${BASE}/cps/${tn}/ppts/${id}`);
    const oneSlash = await fetchApp(`${BASE}/cps/${tn}/ppts/${id}/`);
    return { listed, one: one.status, oneSlash: oneSlash.status, live: await liveCountOf(tn) };
  };

  it.each([
    ["one ms ago", -1, "15550200121"],
    ["exactly now", 0, "15550200122"],
    ["an hour ago", -3_600_000, "15550200123"],
  ])(
    "a blob whose expiry is %s is neither listed nor fetched, before the alarm runs",
    async (_l, delta, tn) => {
      const { text } = await sealedFor(tn);
      const id = await store(tn, text);
      expect(await served(tn, id)).toEqual({ listed: true, one: 200, oneSlash: 200, live: 1 });
      await setExpiry(tn, id, Date.now() + delta);
      expect(await served(tn, id)).toEqual({ listed: false, one: 404, oneSlash: 404, live: 0 });
      // The alarm then deletes the row for good.
      expect(await runDurableObjectAlarm(blockFor(tn))).toBe(true);
      const left = await runInDurableObject(
        blockFor(tn),
        (_obj, state) =>
          state.storage.sql
            .exec<{ n: number }>("SELECT count(*) AS n FROM blobs WHERE tn = ?", canonicalTn(tn))
            .one().n,
      );
      expect(left).toBe(0);
    },
  );

  it("a blob is served until its expiry and not after it, with real time passing", async () => {
    const tn = "15550200199";
    const { text } = await sealedFor(tn);
    const id = await store(tn, text);
    const expiry = Date.now() + 300;
    await setExpiry(tn, id, expiry);
    expect((await served(tn, id)).one).toBe(200);
    await new Promise((r) => setTimeout(r, Math.max(0, expiry - Date.now()) + 50));
    expect(await served(tn, id)).toEqual({ listed: false, one: 404, oneSlash: 404, live: 0 });
  });
});

describe("docs/design.md invariant 6: logs carry no telephone numbers, blobs or tokens", () => {
  const TN = "15550200300";
  const TOKEN = "tok-log-marker-3c9a7e41d0";
  const spies: MockInstance[] = [];
  const lines: string[] = [];

  function capture(): void {
    for (const level of ["log", "info", "warn", "error", "debug"] as const) {
      spies.push(
        vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
          lines.push(
            args
              .map((a) =>
                typeof a === "string"
                  ? a
                  : a instanceof Error
                    ? `${a.stack ?? ""} ${a.message}`
                    : safeJson(a),
              )
              .join(" "),
          );
        }),
      );
    }
  }
  afterEach(() => {
    for (const s of spies.splice(0)) s.mockRestore();
    lines.length = 0;
  });

  /** Every `width`-character window of `text`: a logged fragment of a blob that long would show. */
  const windows = (text: string, width = 16) =>
    Array.from({ length: text.length - width + 1 }, (_, i) => text.slice(i, i + width));

  function expectClean(secrets: { tns: string[]; blobs: string[]; tokens: string[] }): void {
    for (const line of lines) {
      const digitsOnly = line.replace(/[^0-9]/g, "");
      for (const tn of secrets.tns) {
        expect(line).not.toContain(tn);
        expect(digitsOnly).not.toContain(tn);
      }
      for (const token of secrets.tokens) expect(line).not.toContain(token);
      for (const blob of secrets.blobs) {
        for (const w of windows(blob))
          if (line.includes(w)) expect.fail(`a log line carries blob text: ${w}`);
      }
    }
  }

  it("store, list, fetch and a dozen error cases log nothing identifying", async () => {
    const { text } = await sealedFor(TN);
    const badTn = "1555x0200300"; // digits of TN around a letter
    capture();
    const auth = { Authorization: `Bearer ${TOKEN}`, "X-Storage-Token": TOKEN };
    const id = await store("+1 555 020 0300", text, auth);
    const listed = await list(TN);
    const one = await fetchApp(`${BASE}/cps/${TN}/ppts/${id}/`, { headers: auth });
    expect(one.status).toBe(200);
    const blobs = [text, ...listed.passports.map((p) => p.blob)];

    const bad: [string, RequestInit][] = [
      [`/cps/${badTn}/ppts`, {}],
      [
        `/cps/${badTn}/ppts`,
        { method: "POST", body: text, headers: { "Content-Type": "application/passport" } },
      ],
      [
        `/cps/${TN}/ppts`,
        { method: "POST", body: `${text}==`, headers: { "Content-Type": "application/passport" } },
      ],
      [
        `/cps/${TN}/ppts`,
        { method: "POST", body: text.slice(4), headers: { "Content-Type": "application/passport" } },
      ],
      [`/cps/${TN}/ppts`, { method: "POST", body: text, headers: { "Content-Type": "text/plain" } }],
      [
        `/cps/${TN}/ppts`,
        { method: "POST", body: text.repeat(7), headers: { "Content-Type": "application/passport" } },
      ],
      [`/cps/${TN}/ppts`, { method: "PUT", body: text, headers: auth }],
      [`/cps/${TN}/ppts/${id}`, { method: "DELETE", headers: auth }],
      [`/cps/${TN}/ppts/${id.toUpperCase()}`, {}],
      [`/cps/${TN}/ppts/${"0".repeat(32)}`, { headers: auth }],
      [`/cps/${TN}/${text.slice(0, 40)}`, {}],
      [`/cps/${TN}${"0".repeat(20)}/ppts`, {}],
    ];
    for (const [path, init] of bad) {
      const res = await fetchApp(`${BASE}${path}`, init);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
    }
    expectClean({ tns: [TN, "0200300"], blobs, tokens: [TOKEN] });
  });

  it("a server-side failure (500) logs a code, not the number, path or body (and the spy does see it)", async () => {
    const { text } = await sealedFor(TN);
    capture();
    // A misconfigured var fails every request with MISCONFIGURED, the one path that logs today.
    const badEnv = { ...env, PASSPORT_TTL_SECONDS: "not-a-number" } as Env;
    const res = await app.fetch(
      new Request(`${BASE}/cps/${TN}/ppts`, {
        method: "POST",
        body: text,
        headers: { "Content-Type": "application/passport", Authorization: `Bearer ${TOKEN}` },
      }),
      badEnv,
      createExecutionContext(),
    );
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(body).not.toContain(TN);
    expect(body).not.toMatch(/\bat \S+ \(|\.[jt]s:\d+/);
    // Control: the failure was logged and captured, so the checks below look at real log text.
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("\n")).toContain("MISCONFIGURED");
    expectClean({ tns: [TN, "0200300"], blobs: [text], tokens: [TOKEN] });
  });
});

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
