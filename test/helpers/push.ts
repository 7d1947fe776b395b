/** Test helpers for push subscriptions: open a subscription through the app and collect its frames. */
import { exports } from "cloudflare:workers";

export interface PushFrameBody {
  type: string;
  id: string;
  tn: string;
  blob: string;
  /** Length of the frame's text (one line of a message). */
  length: number;
}

export interface Subscription {
  ws: WebSocket;
  frames: PushFrameBody[];
  /** Frames per WebSocket message received, in order. */
  messages: number[];
  ids(): Set<string>;
  /** Resolves once `pred(frames)` holds; rejects after `timeoutMs`. */
  until(pred: (frames: PushFrameBody[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): void;
}

export const BASE = "https://cps.example.com";

export async function subscribe(path: string): Promise<Subscription> {
  const res = await exports.default.fetch(
    new Request(`${BASE}${path}`, { headers: { Upgrade: "websocket" } }),
  );
  if (res.status !== 101 || !res.webSocket) throw new Error(`subscribe ${path}: ${res.status}`);
  const ws = res.webSocket;
  const frames: PushFrameBody[] = [];
  const messages: number[] = []; // frames per WebSocket message (overlapping stores share one)
  ws.addEventListener("message", (e) => {
    const lines = (typeof e.data === "string" ? e.data : "").split("\n");
    messages.push(lines.length);
    for (const line of lines) frames.push({ ...(JSON.parse(line) as PushFrameBody), length: line.length });
  });
  ws.accept();
  return {
    ws,
    frames,
    messages,
    ids: () => new Set(frames.map((f) => f.id)),
    async until(pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred(frames)) {
        if (Date.now() > deadline) throw new Error(`timed out with ${frames.length} frames`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close() {
      try {
        ws.close(1000, "done");
      } catch {
        // already closed
      }
    },
  };
}
