/**
 * The open-loop schedule of `npm run load`: request i of the mix is launched at start + i / rate,
 * whatever the earlier ones are doing; then the drain, which waits for the answers still on their way
 * and for every remaining check to fall due. Throughout, checks no request took in time are sent on
 * their own (every CHECK_TICK_MS) and a progress line goes to stderr (every PROGRESS_EVERY_MS).
 */
import { sleep } from "../lib/closed-loop.mjs";
import { fmt } from "../lib/report.mjs";
import {
  CHECK_TICK_MS,
  DRAIN_SLACK_MS,
  FALLBACK_LAG_MS,
  GRACE_MS,
  MIX,
  PROGRESS_EVERY_MS,
  progress,
  SHARES,
} from "./config.mjs";

/** The mix as a fixed sequence: smooth weighted round robin, so each kind is spread evenly. */
export function mixSequence() {
  const credit = Object.fromEntries(MIX.map((k) => [k, 0]));
  return () => {
    let best = MIX[0];
    for (const k of MIX) {
      credit[k] += SHARES[k];
      if (credit[k] > credit[best]) best = k;
    }
    credit[best] -= 1;
    return best;
  };
}

/**
 * Runs the traffic (flags.rate requests/s for flags.duration s) and the drain; `onStart` is called just
 * before the first launch. Resolves with the length of each phase (s) and every launch's lag behind its
 * schedule (ms); rejects as soon as the client worker has failed.
 */
export async function drive({ flags, stats, verifier, traffic, client, onStart }) {
  const phases = { trafficSeconds: 0, drainSeconds: 0 };
  const lags = [];
  let phase = "traffic";
  const trafficStart = performance.now();
  const progressLine = () => {
    const t = stats.totals();
    progress(
      `${phase} ${fmt((performance.now() - trafficStart) / 1000)} s: sent ${fmt(t.sent)}, answered ` +
        `${fmt(t.answered)}, in flight ${traffic.inFlight}, p99 ${fmt(t.p99, 1)} ms; blobs ` +
        `${fmt(verifier.blobs.size)}, open checks ${fmt(verifier.open)}; lost ${verifier.seen.lost}, lingering ` +
        `${verifier.seen.lingering}, corrupt ${verifier.seen.corrupt}, 5xx ${stats.fiveXX}, cap hits ${stats.capHits}`,
    );
  };
  const checker = setInterval(
    () => traffic.sendOverdueChecks(phase === "traffic" ? FALLBACK_LAG_MS : 0),
    CHECK_TICK_MS,
  );
  const ticker = setInterval(progressLine, PROGRESS_EVERY_MS);
  try {
    // Traffic: request i is launched at start + i / rate, whatever the earlier ones are doing.
    progress(`traffic for ${flags.duration} s...`);
    onStart();
    const next = mixSequence();
    const interval = 1000 / flags.rate;
    const total = Math.floor(flags.rate * flags.duration);
    for (let i = 0; i < total; i++) {
      if (client.failure) throw client.failure;
      const due = trafficStart + i * interval;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      lags.push(Math.max(0, performance.now() - due));
      traffic.launch(next());
    }
    await sleep(Math.max(0, trafficStart + flags.duration * 1000 - performance.now()));
    phases.trafficSeconds = (performance.now() - trafficStart) / 1000;

    // Drain: the answers still on their way, then every remaining check at its time.
    phase = "drain";
    const drainStart = performance.now();
    progress("traffic done; checking the remaining blobs until their TTL has passed...");
    await traffic.settled();
    const deadline = verifier.lastExpiry() + GRACE_MS + DRAIN_SLACK_MS;
    while ((verifier.waiting || traffic.pending.size > 0) && Date.now() < deadline) {
      if (client.failure) throw client.failure;
      await sleep(CHECK_TICK_MS);
    }
    await traffic.settled();
    phases.drainSeconds = (performance.now() - drainStart) / 1000;
  } finally {
    clearInterval(checker);
    clearInterval(ticker);
  }
  progressLine();
  return { phases, lags };
}
