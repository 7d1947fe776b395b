/**
 * CPU profiles of a Worker under `wrangler dev`, through its inspector (the DevTools protocol that
 * `--inspector-port` serves), and a summary of where the time went: self time by function and by
 * source file, so a budget table can name what one request costs.
 */

/** The DevTools socket of the Worker behind `wrangler dev --inspector-port <port>`. */
async function connect(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  // Miniflare lists each of its Workers; the user Worker is `core:user:<name>`. wrangler dev's proxy
  // lists just the one.
  const target = targets.find((t) => String(t.id).startsWith("core:user:")) ?? targets[0];
  const url = target?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on port ${port}`);
  // Node 22 has WebSocket built in; Node 20 without --experimental-websocket takes the ws package.
  const WS = globalThis.WebSocket ?? (await import("ws")).default;
  const socket = new WS(url);
  await new Promise((resolve, reject) => {
    socket.addEventListener("open", resolve, { once: true });
    socket.addEventListener("error", reject, { once: true });
  });
  let next = 1;
  const waiting = new Map();
  const scripts = [];
  socket.addEventListener("message", (ev) => {
    const msg = JSON.parse(typeof ev.data === "string" ? ev.data : ev.data.toString());
    if (msg.method === "Debugger.scriptParsed") scripts.push(msg.params);
    const w = waiting.get(msg.id);
    if (!w) return;
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(`${msg.error.message} (${msg.error.code})`));
    else w.resolve(msg.result);
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  return { send, scripts, close: () => socket.close() };
}

/**
 * Starts sampling the Worker's CPU (every `intervalUs` microseconds); `stop()` resolves to
 * { profile, bundle }: the DevTools `Profile` object (Chrome's DevTools and speedscope open it as
 * .cpuprofile) and the source text of the Worker's bundle as the runtime ran it, for bundleModules.
 */
export async function startProfile(port, { intervalUs = 200 } = {}) {
  const s = await connect(port);
  await s.send("Profiler.enable");
  await s.send("Profiler.setSamplingInterval", { interval: intervalUs });
  await s.send("Profiler.start");
  return {
    async stop() {
      const { profile } = await s.send("Profiler.stop");
      await s.send("Profiler.disable");
      // The debugger only after sampling: enabling it lists every script the isolate has parsed.
      await s.send("Debugger.enable");
      const script = s.scripts.find((x) => /(^|\/)index\.js$/.test(x.url));
      const bundle = script
        ? (await s.send("Debugger.getScriptSource", { scriptId: script.scriptId })).scriptSource
        : undefined;
      await s.send("Debugger.disable");
      s.close();
      return { profile, bundle };
    },
  };
}

/** A source path's short name: the package for node_modules, else the path from src/. */
function shortName(path) {
  const m = path.match(/node_modules\/(@[^/]+\/[^/]+|[^/]+)/);
  return m ? m[1] : path;
}

/**
 * Maps a line of an esbuild bundle (`npm start`'s `.wrangler/tmp/npm-start/index.js`, wrangler dev's `.wrangler/tmp/dev-*\/index.js`) to the source module it
 * came from, by the `// src/...` and `// node_modules/...` comments esbuild writes before each module.
 */
export function bundleModules(bundleText) {
  const starts = [];
  const lines = bundleText.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = lines[i].match(/^\/\/ ((?:src|node_modules)\/\S+)$/);
    if (m) starts.push([i + 1, shortName(m[1])]);
  }
  return (line) => {
    let lo = 0;
    let hi = starts.length - 1;
    let found = "(bundle)";
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid][0] <= line) {
        found = starts[mid][1];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
}

/**
 * Self time (ms) by function and by source module, heaviest first, and the total sampled time. Time in
 * native frames (the runtime's own code: SQLite, crypto, RPC) is charged to the nearest JavaScript
 * caller, so a module's figure is what calling it cost. `calls` turns each into a per-call figure;
 * `moduleOf` (bundleModules) names the source module of a bundle line.
 */
export function summariseProfile(profile, { calls = 1, top = 25, moduleOf = () => "(bundle)" } = {}) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const fileOf = (frame) =>
    /(^|\/)index\.js$/.test(frame.url) ? moduleOf(frame.lineNumber + 1) : frame.url || "(native)";
  /** The nearest ancestor with a script (itself if it has one), or the node itself if none has. */
  const owner = (id) => {
    let cur = id;
    while (cur !== undefined) {
      const n = nodes.get(cur);
      if (n.callFrame.url) return n;
      cur = parent.get(cur);
    }
    return nodes.get(id);
  };
  const selfUs = new Map();
  const deltas = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (deltas[i + 1] ?? 0));
  }
  const byFunction = new Map();
  const byFile = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const self = nodes.get(id).callFrame;
    if (self.functionName === "(idle)") {
      idle += us;
      continue;
    }
    total += us;
    const frame = owner(id).callFrame;
    const file = fileOf(frame);
    const native = self.url ? "" : ` > ${self.functionName || "(native)"}`;
    const fn = `${frame.functionName || "(anonymous)"} ${file}${frame.url ? `:${frame.lineNumber + 1}` : ""}${native}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  }
  const rank = (m) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, msPerCall: us / 1000 / calls, share: us / total }));
  return {
    sampledMs: total / 1000,
    idleMs: idle / 1000,
    msPerCall: total / 1000 / calls,
    byFile: rank(byFile),
    byFunction: rank(byFunction),
  };
}
