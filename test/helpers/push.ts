/** Test helpers for push subscriptions: open a subscription through the app and collect its frames. */
import { exports } from "cloudflare:workers";
import { TEST_CPS_ORIGIN } from "./origin.js";

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
  /** Frames per WebSocket message received, in order (flow-control `mark` messages not counted). */
  messages: number[];
  /** Characters of frame messages received (what the CPS counts as sent; marks not counted). */
  chars: number;
  /** Flow-control marks received (`mark <hex>`), in order. */
  marks: string[];
  /** Close code once closed, else null. */
  closedWith: number | null;
  ids(): Set<string>;
  /** Resolves once `pred(frames)` holds; rejects after `timeoutMs`. */
  until(pred: (frames: PushFrameBody[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): void;
}

export const BASE = TEST_CPS_ORIGIN;

export interface SubscribeOptions {
  /** Extra request headers (e.g. `Authorization`). */
  headers?: Record<string, string>;
  /** Answer every `mark <hex>` with `ack <hex>`, as a reading client must (default true). */
  ack?: boolean;
}

/** The upgrade request of a subscription through the app. */
export function subscribeRequest(path: string, headers: Record<string, string> = {}): Request {
  return new Request(`${BASE}${path}`, { headers: { Upgrade: "websocket", ...headers } });
}

/** A subscription the CPS did not upgrade, with its answer (to read its status and Retry-After). */
export class SubscribeRefused extends Error {
  constructor(
    path: string,
    readonly response: Response,
  ) {
    super(`subscribe ${path}: ${response.status}`);
  }
}

export async function subscribe(path: string, options: SubscribeOptions = {}): Promise<Subscription> {
  const res = await exports.default.fetch(subscribeRequest(path, options.headers));
  if (res.status !== 101 || !res.webSocket) throw new SubscribeRefused(path, res);
  const ws = res.webSocket;
  const sub: Subscription = {
    ws,
    frames: [],
    messages: [], // frames per WebSocket message (overlapping stores share one)
    chars: 0,
    marks: [],
    closedWith: null,
    ids: () => new Set(sub.frames.map((f) => f.id)),
    async until(pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred(sub.frames)) {
        if (Date.now() > deadline) throw new Error(`timed out with ${sub.frames.length} frames`);
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
  ws.addEventListener("message", (e) => {
    const data = typeof e.data === "string" ? e.data : "";
    const mark = /^mark ([0-9a-f]{32})$/.exec(data);
    if (mark) {
      sub.marks.push(mark[1]!);
      if (options.ack !== false) ws.send(`ack ${mark[1]}`);
      return;
    }
    const lines = data.split("\n");
    sub.messages.push(lines.length);
    sub.chars += data.length;
    for (const line of lines)
      sub.frames.push({ ...(JSON.parse(line) as PushFrameBody), length: line.length });
  });
  ws.addEventListener("close", (e) => {
    sub.closedWith = (e as CloseEvent).code;
  });
  ws.accept();
  return sub;
}
