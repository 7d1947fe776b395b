/**
 * Masks telephone numbers in the output `npm start` prints: the Worker's own log lines, and with
 * `--watch` the output of `wrangler dev`, which logs one
 * line per request (`[wrangler:info] GET /cps/12025550123/ppts 200 OK (4ms)`), and paths carry
 * called numbers, number blocks and prefixes, against the invariant that logs carry no telephone
 * numbers (the CPS's own logs never do). No option of wrangler 4 turns those lines off without also
 * hiding "Ready on" (they come from miniflare's request logging of wrangler's proxy Worker).
 *
 * Rules, per line: every digit of a URL path or query (a token starting with `/`, or the part of an
 * http(s) URL after its host) becomes `#`, and so does any other run of 6 or more digits. What stays:
 * hosts and ports (`Ready on http://127.0.0.1:8787`), methods, statuses, timings, error text.
 *
 * Plain Node ESM (runs before anything is built). Types: redact-log.d.mts.
 */
import { Transform } from "node:stream";

const mask = (text) => text.replace(/\d/g, "#");

/** One line (no newline) with numbers masked. */
export function redactLine(line) {
  return (
    line
      // http(s)://host[:port]/path?query: the host and port stay, the path and query are masked.
      .replace(/(https?:\/\/[^\s/?#"'<>]+)([/?][^\s"'<>]*)/g, (_, origin, rest) => origin + mask(rest))
      // A bare path token, as in wrangler's request lines.
      .replace(/(^|[\s"'(=])(\/(?!\/)[^\s"'<>]*)/g, (_, before, path) => before + mask(path))
      // Anything else that looks like a number; 6+ so that ports (at most 5 digits) stay.
      .replace(/\d{6,}/g, mask)
  );
}

/**
 * A Transform stream applying redactLine to each line of text; a partial last line is held until
 * its newline arrives (or the stream ends), so a number split across chunks is still masked.
 */
export function lineRedactor() {
  let held = "";
  return new Transform({
    transform(chunk, _encoding, done) {
      const text = held + chunk.toString("utf8");
      const end = text.lastIndexOf("\n");
      if (end === -1) {
        held = text;
        return done();
      }
      held = text.slice(end + 1);
      done(null, `${text.slice(0, end).split("\n").map(redactLine).join("\n")}\n`);
    },
    flush(done) {
      done(null, held === "" ? "" : redactLine(held));
    },
  });
}
