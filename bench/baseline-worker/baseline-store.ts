/**
 * The benchmark's baseline: one bare Durable Object SQLite write or read with no CPS logic, so
 * `npm run bench` can report CPS throughput as a ratio of what the platform itself does in the
 * same run. Part of the bench Worker (bench/wrangler.toml), never of the CPS Worker.
 */
import { DurableObject } from "cloudflare:workers";
import type { BenchEnv } from "./index.js";

export class BaselineStore extends DurableObject<BenchEnv> {
  constructor(ctx: DurableObjectState, env: BenchEnv) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS kv (id TEXT PRIMARY KEY, v BLOB NOT NULL)");
  }

  async write(id: string, value: Uint8Array): Promise<void> {
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO kv (id, v) VALUES (?, ?)", id, value);
  }

  async read(id: string): Promise<Uint8Array | null> {
    const rows = this.ctx.storage.sql.exec<{ v: ArrayBuffer }>("SELECT v FROM kv WHERE id = ?", id).toArray();
    return rows[0] ? new Uint8Array(rows[0].v) : null;
  }

  /** Every value stored here, with its id: the bare counterpart of a CPS list (bench:peer `bare`). */
  async list(): Promise<{ id: string; value: Uint8Array }[]> {
    return this.ctx.storage.sql
      .exec<{ id: string; v: ArrayBuffer }>("SELECT id, v FROM kv")
      .toArray()
      .map((r) => ({ id: r.id, value: new Uint8Array(r.v) }));
  }
}
