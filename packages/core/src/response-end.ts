// When a Node response is over, and when its handler ends it: the two events every adapter bills on.
import { AsyncResource } from 'node:async_hooks';
import type { ServerResponse } from 'node:http';

/**
 * Calls `done` once, when the response is over: sent, or abandoned by the client. Written here
 * rather than with on-finished: on Node ≥ 20 a ServerResponse always emits 'close' (after 'finish',
 * or when the connection goes), so one listener is enough, where on-finished puts four on the
 * response and its socket and takes them off again. That was ~14 µs of the ~50 µs metering added to
 * each request of the Express hello-world benchmark, by CPU profile (docs/BENCHMARKS.md). `done`
 * runs in the request's async context, as on-finished's callbacks do (AsyncLocalStorage users).
 *
 * @example
 * whenResponseDone(res, () => bill(req, res));
 */
export function whenResponseDone(res: ServerResponse, done: () => void): void {
  const context = new AsyncResource('metered.response');
  const fire = (): void => {
    context.runInAsyncScope(done);
  };
  // A response whose connection is already gone emits no more 'close'.
  if (res.closed || res.socket?.destroyed === true) setImmediate(fire);
  else res.once('close', fire);
}

/**
 * Resolves when the handler ends `res` (`res.end()`, and so Express's `res.send()` or Fastify's
 * `reply.send()`). Node emits no event for a response ended after its socket closed, so `end` itself
 * is wrapped: only on a response whose client has left, only for the abort grace, and put back by
 * `stop()`.
 *
 * @example
 * const handler = whenHandlerEnds(res);
 * const finished = await finishedWithin(handler.ended, graceMs).finally(handler.stop);
 */
export function whenHandlerEnds(res: ServerResponse): { ended: Promise<void>; stop: () => void } {
  // Put back as it was found and only ever called with the response as `this`.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = res.end;
  const ownEnd = Object.hasOwn(res, 'end');
  let markEnded!: () => void;
  const ended = new Promise<void>((resolve) => {
    markEnded = resolve;
  });
  const wrapped = function (this: ServerResponse, ...args: unknown[]): unknown {
    stop();
    markEnded();
    return Reflect.apply(original, this, args);
  };
  function stop(): void {
    // Another wrapper installed after ours stays; ours then just forwards.
    if (res.end !== wrapped) return;
    if (ownEnd) res.end = original;
    else delete (res as { end?: unknown }).end;
  }
  res.end = wrapped as ServerResponse['end'];
  return { ended, stop };
}
