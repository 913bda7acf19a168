// Which requests metered by the guard are still waiting to hear that every guard let them through.

/** What the adapter's `status()` marks: a request metered from the guard. */
export interface AwaitingPass {
  passed: boolean;
}

/**
 * Keyed by the framework's response (Express's, or Fastify's reply), which is what Nest hands
 * `HttpAdapter#status()`: a Map rather than a property on the response, because adding a property
 * to Express's response (whose prototype Express swaps per request) cost ~2 µs per request by CPU
 * profile (docs/BENCHMARKS.md). One Map for every copy of this package in the process, since one
 * wrapped `status()` serves them all.
 */
const AWAITING: Map<object, AwaitingPass> = ((globalThis as { [key: symbol]: unknown })[Symbol.for('@metered/nestjs:awaiting-pass')] ??= new Map()) as Map<
  object,
  AwaitingPass
>;

/** Until `passed()` or `forgetPass()` for `response`: the request that `status()` on it marks as passed. */
export function awaitPass(response: object, request: AwaitingPass): void {
  AWAITING.set(response, request);
}

/** Called by the wrapped `status()`: every guard let the request answered by `response` through. */
export function markPassed(response: unknown): void {
  if (typeof response !== 'object' || response === null) return;
  const request = AWAITING.get(response);
  if (request === undefined) return;
  request.passed = true;
  AWAITING.delete(response);
}

/** The response is over without a pass (a guard said no): nothing waits for it anymore. */
export function forgetPass(response: object): void {
  AWAITING.delete(response);
}

/** How many requests wait (tests: none is left behind). */
export function awaitingPasses(): number {
  return AWAITING.size;
}
