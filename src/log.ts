/**
 * The one log line format: a JSON object of counts and codes, never a telephone number, blob or
 * token (docs/design.md invariant 6). Its own module so Durable Objects log without the HTTP layer.
 */
export function logEvent(event: Record<string, string | number | boolean>): void {
  console.log(JSON.stringify(event));
}
