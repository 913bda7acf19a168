// Which requests metered by the guard are still waiting to hear that every guard let them through.

/** What the adapter's `status()` marks: a request metered from the guard. */
export interface AwaitingPass {
  passed: boolean;
}

/**
 * The requests waiting, keyed by the framework's response (Express's, or Fastify's reply), which is
 * what Nest hands `HttpAdapter#status()`. Nest calls `status()` a microtask or two after the guards
 * of the same request, before another request's guards run, so nearly always only one request is
 * waiting: a request is kept in a slot of its own when the slot is free, in a Map otherwise (while
 * the slot's request waits in a guard that awaits something, or for its refused response to end). The Map's hashing of Express's response (whose prototype Express
 * swaps per request) and its set and delete were ~4% of a Nest-on-Fastify hello world's throughput
 * (bench/NOTES.md); a property on the response cost ~2 µs per request. One table for every copy of
 * this package in the process, since one wrapped `status()` serves them all.
 */
interface AwaitingTable {
  response: object | undefined;
  request: AwaitingPass | undefined;
  readonly others: Map<object, AwaitingPass>;
}

// Its key goes with the shape of the table and with WRAPPED (metering.guard.ts): a copy of this package
// that kept another shape under another key wraps status() for its own table.
const AWAITING: AwaitingTable = ((globalThis as { [key: symbol]: unknown })[Symbol.for('@metered/nestjs:awaiting-passes')] ??= {
  response: undefined,
  request: undefined,
  others: new Map(),
}) as AwaitingTable;

/** Until `passed()` or `forgetPass()` for `response`: the request that `status()` on it marks as passed. */
export function awaitPass(response: object, request: AwaitingPass): void {
  const table = AWAITING;
  if (table.response === undefined || table.response === response) {
    table.response = response;
    table.request = request;
    // A response is awaited once (its request is claimed first); were it again, one entry stays.
    if (table.others.size > 0) table.others.delete(response);
  } else {
    table.others.set(response, request);
  }
}

/** Takes the request waiting on `response` out of the table, if any. */
function take(response: object): AwaitingPass | undefined {
  const table = AWAITING;
  if (table.response === response) {
    const request = table.request;
    table.response = undefined;
    table.request = undefined;
    return request;
  }
  const others = table.others;
  if (others.size === 0) return undefined;
  const request = others.get(response);
  if (request !== undefined) others.delete(response);
  return request;
}

/** Called by the wrapped `status()`: every guard let the request answered by `response` through. */
export function markPassed(response: unknown): void {
  if (typeof response !== 'object' || response === null) return;
  const request = take(response);
  if (request !== undefined) request.passed = true;
}

/** The response is over without a pass (a guard said no): nothing waits for it anymore. */
export function forgetPass(response: object): void {
  take(response);
}

/** How many requests wait (tests: none is left behind). */
export function awaitingPasses(): number {
  return (AWAITING.response === undefined ? 0 : 1) + AWAITING.others.size;
}
