/**
 * What one call costs in Durable Object storage operations, counted inside workerd (docs/capacity.md):
 * a tokened store, one retrieval of the number, and the expiry of what the store left, with SQLite
 * rows read and written as the runtime reports them (`cursor.rowsRead`, `cursor.rowsWritten`, which
 * is what Cloudflare bills for SQLite-backed objects) and `setAlarm` calls (each billed as one row
 * written), per object the call touches: the number's PassportQueue, its block's BlockQueue and the
 * token's TokenLedger shard. Durable Object requests are counted by the objects the route calls.
 *
 * Each store is paid with a fresh token and carries a feedback tag, as the library's AS sends them.
 * Runs in the `integration-tokens-scaled` project (TTL 2 s), so expiry happens within the run:
 *   BENCH_ROWS=1 npx vitest run --project integration-tokens-scaled bench/rows.workerd.ts
 * Prints `ROWS_BENCH {json}`: medians over CALLS calls, each on a fresh number and token.
 */
import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { expect, it } from "vitest";
import { ledgerShard } from "../src/durable-objects/token-ledger.js";
import { encodeBase64url } from "../src/stir/base64url.js";
import { FEEDBACK_TAG_HEADER } from "../src/stir/feedback.js";
import { tokenIdOf } from "../src/stir/storage-token.js";
import { canonicalTn } from "../src/stir/tn.js";
import { blockQueueOfTn, passportQueue, tokenLedgerShard } from "../src/storage/objects.js";
import {
  BASE,
  directToken,
  issuerPrivateKey,
  sealedFor,
  tokenHeaders,
} from "../test/integration-tokens/helpers.js";
import { median } from "./lib/stats.mjs";

const CALLS = 15;

interface Tally {
  rowsRead: number;
  rowsWritten: number;
  alarms: number;
}

/**
 * Counts the SQL and alarm work of one object from now on: its `sql.exec` cursors (their counters are
 * read when `read()` is called, after the work) and its `setAlarm` calls.
 */
async function watchObject(stub: DurableObjectStub): Promise<() => Tally> {
  const cursors: { rowsRead: number; rowsWritten: number }[] = [];
  let alarms = 0;
  await runInDurableObject(stub, (_instance, state) => {
    const sql = state.storage.sql;
    const exec = sql.exec.bind(sql);
    sql.exec = ((query: string, ...bindings: unknown[]) => {
      const cursor = exec(query, ...bindings);
      cursors.push(cursor);
      return cursor;
    }) as typeof sql.exec;
    const setAlarm = state.storage.setAlarm.bind(state.storage);
    state.storage.setAlarm = (async (...args: Parameters<typeof setAlarm>) => {
      alarms++;
      return setAlarm(...args);
    }) as typeof setAlarm;
  });
  return () => ({
    rowsRead: cursors.reduce((s, c) => s + c.rowsRead, 0),
    rowsWritten: cursors.reduce((s, c) => s + c.rowsWritten, 0),
    alarms,
  });
}

const sub = (a: Tally, b: Tally): Tally => ({
  rowsRead: a.rowsRead - b.rowsRead,
  rowsWritten: a.rowsWritten - b.rowsWritten,
  alarms: a.alarms - b.alarms,
});

it("storage operations of one call", { timeout: 300_000 }, async () => {
  const signer = await issuerPrivateKey("test-current");
  const { text } = await sealedFor("12025550000");
  const phases: Record<string, Record<string, Tally[]>> = { store: {}, retrieve: {}, expiry: {} };
  const push = (phase: string, object: string, t: Tally) => {
    const bucket = phases[phase] ?? {};
    phases[phase] = bucket;
    bucket[object] = [...(bucket[object] ?? []), t];
  };
  for (let i = 0; i < CALLS; i++) {
    // A number in its own index block and a fresh token: the cold case national traffic looks like.
    const tn = canonicalTn(`1404${String(i).padStart(3, "0")}0000`);
    const { token, privateKey } = await directToken("test-current", signer);
    // As the library's AS sends it: the token headers and a feedback tag (32 bytes the CPS cannot
    // check, so random ones cost what a real one costs: docs/tokens.md "Feedback").
    const headers = {
      ...(await tokenHeaders(token, privateKey, tn, text)),
      [FEEDBACK_TAG_HEADER]: encodeBase64url(crypto.getRandomValues(new Uint8Array(32))),
    };
    const objects = {
      queue: passportQueue(env, tn),
      block: blockQueueOfTn(env, tn),
      ledger: tokenLedgerShard(env, ledgerShard(await tokenIdOf(token.kTempSpki))),
    };
    const readers = Object.fromEntries(
      await Promise.all(Object.entries(objects).map(async ([k, s]) => [k, await watchObject(s)] as const)),
    ) as Record<keyof typeof objects, () => Tally>;
    const snap = () =>
      Object.fromEntries(Object.entries(readers).map(([k, r]) => [k, r()])) as Record<string, Tally>;

    const s0 = snap();
    const res = await SELF.fetch(`${BASE}/cps/${tn}/ppts`, {
      method: "POST",
      headers: { "Content-Type": "application/passport", ...headers },
      body: text,
    });
    expect(res.status, await res.text()).toBe(201);
    const s1 = snap();
    const list = await SELF.fetch(`${BASE}/cps/${tn}/ppts`);
    expect(list.status).toBe(200);
    await list.arrayBuffer();
    const s2 = snap();
    // Past the (scaled) TTL and the per-number window, every object's alarm has its work to do.
    await new Promise((r) => setTimeout(r, 2_300));
    for (const stub of Object.values(objects)) await runDurableObjectAlarm(stub);
    const s3 = snap();
    for (const k of Object.keys(objects)) {
      push("store", k, sub(s1[k]!, s0[k]!));
      push("retrieve", k, sub(s2[k]!, s1[k]!));
      push("expiry", k, sub(s3[k]!, s2[k]!));
    }
  }
  const medians = Object.fromEntries(
    Object.entries(phases).map(([phase, objs]) => [
      phase,
      Object.fromEntries(
        Object.entries(objs).map(([k, ts]) => [
          k,
          {
            rowsRead: median(ts.map((t) => t.rowsRead)),
            rowsWritten: median(ts.map((t) => t.rowsWritten)),
            alarms: median(ts.map((t) => t.alarms)),
          },
        ]),
      ),
    ]),
  );
  const total = (field: keyof Tally) =>
    Object.values(medians).reduce(
      (s, objs) => s + Object.values(objs).reduce((t, v) => t + (v[field] as number), 0),
      0,
    );
  const result = {
    calls: CALLS,
    medians,
    perCall: { rowsRead: total("rowsRead"), rowsWritten: total("rowsWritten"), alarms: total("alarms") },
  };
  console.log(`ROWS_BENCH ${JSON.stringify(result)}`);
  expect(result.perCall.rowsWritten).toBeGreaterThan(0);
});
