/**
 * The CLI's replay cache (RFC 8816 §8.2 step 5, the VS's `ReplayStore`): one file per PASSporT that
 * verified a call, `<home>/replay/<sha-256 of its header and payload>.json` = `{ callId, expiresAt }`, so
 * every `stir-oob verify` run of one home shares it (each run is a separate process; an in-memory
 * cache would forget the PASSporT between two calls). A claim creates the file exclusively (`wx`),
 * so two runs at once cannot both take one PASSporT. Expired files are swept on each claim.
 */
import { mkdir, readdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ReplayStore } from "../client/vs.js";

interface Entry {
  callId: string;
  expiresAt: number;
}

export class FileReplayStore implements ReplayStore {
  readonly #dir: string;

  constructor(home: string) {
    this.#dir = join(home, "replay");
  }

  async #read(path: string): Promise<Entry | undefined> {
    try {
      const e = JSON.parse(await readFile(path, "utf8")) as Partial<Entry>;
      return typeof e.callId === "string" && typeof e.expiresAt === "number"
        ? { callId: e.callId, expiresAt: e.expiresAt }
        : undefined;
    } catch {
      return undefined;
    }
  }

  async #sweep(now: number): Promise<void> {
    let files: string[];
    try {
      files = await readdir(this.#dir);
    } catch {
      return;
    }
    for (const f of files) {
      if (!f.endsWith(".json")) continue;
      const path = join(this.#dir, f);
      const e = await this.#read(path);
      // Unreadable: a run that died mid-write; left alone for a while (another run may be writing it).
      const stale = e
        ? e.expiresAt <= now
        : ((await stat(path).catch(() => undefined))?.mtimeMs ?? 0) < (now - 600) * 1000;
      if (stale) await unlink(path).catch(() => undefined);
    }
  }

  async claim(key: string, callId: string, expiresAt: number, now: number): Promise<string> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await this.#sweep(now);
    // The key is base64url (vs.ts replayKey): safe as a file name.
    const path = join(this.#dir, `${key}.json`);
    const body = JSON.stringify({ callId, expiresAt });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await writeFile(path, body, { flag: "wx", mode: 0o600 });
        return callId;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const held = await this.#read(path);
      // Unreadable: another run is writing it right now; it is taken.
      if (!held) return "";
      if (held.expiresAt > now) return held.callId;
      await unlink(path).catch(() => undefined); // expired: free it and try again
    }
    // Three runs kept racing for it: treat it as taken rather than let two calls verify.
    return (await this.#read(path))?.callId ?? "";
  }
}
