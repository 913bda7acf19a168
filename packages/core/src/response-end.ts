// When a Node response is over, and when its handler ends it: the two events every adapter bills on.
import { AsyncResource } from 'node:async_hooks';
import { subscribe } from 'node:diagnostics_channel';
import { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** One response someone waits on: its callback, in the async context it was registered in, run once. */
interface Watch {
  readonly res: ServerResponse;
  readonly done: (argument: unknown) => void;
  /** What `done` is called with: an adapter's own record of the request, so that it needs no closure per request. */
  readonly argument: unknown;
  readonly context: AsyncResource;
  fired: boolean;
  /** The responses still pending on the same connection, this one among them, while it is. */
  pending: Watch[] | undefined;
}

// Private to this copy of core (not Symbol.for): another copy keeps its own watches and its own subscriber.
const PENDING = Symbol('metered.pendingResponses');

/** A connection of Node's HTTP/1 server: it has a parser (internal to Node, read only to tell it apart). */
type ServerSocket = Socket & { parser?: unknown; [PENDING]?: Watch[] };

function fire(watch: Watch): void {
  if (watch.fired) return;
  watch.fired = true;
  const pending = watch.pending;
  if (pending !== undefined) {
    watch.pending = undefined;
    const at = pending.indexOf(watch);
    if (at !== -1) pending.splice(at, 1);
  }
  try {
    watch.context.runInAsyncScope(watch.done, undefined, watch.argument);
  } catch {
    // Adapters' callbacks never throw (metering failures go to onError); were one to, it must not
    // escape into Node's HTTP code or keep the connection's other responses from being called.
  }
}

let subscribed = false;

/**
 * Node's HTTP server publishes every response it finishes on this channel (once per response, from
 * its own 'finish' listener), so a response it serves needs no listener of ours: one subscriber per
 * process finds the response's watch among those of its connection (one, unless pipelined). Nothing
 * is written on the response itself: Express gives every request and response a map of its own, so
 * each property added to one costs V8 a new map (a copy of its ~30 descriptors). The callback runs
 * on the next tick, as 'close' would have: after every other 'finish' listener, before 'close'.
 */
function onResponseFinish(message: unknown): void {
  const { response, socket } = message as { response?: ServerResponse; socket?: ServerSocket };
  const pending = socket?.[PENDING];
  if (pending === undefined) return;
  for (const watch of pending) {
    if (watch.res === response) {
      process.nextTick(fire, watch);
      return;
    }
  }
}

/** The connection's own 'close': every response still pending on it is over, its client gone. */
function onConnectionClose(this: ServerSocket): void {
  const pending = this[PENDING];
  if (pending === undefined) return;
  for (const watch of [...pending]) fire(watch);
}

/**
 * The socket a response goes out on: its own, or, for a pipelined response still waiting for the ones
 * before it (no socket of its own yet), its request's. Undefined or null where there is none: a response
 * already finished, whose socket Node has let go (its own 'close' follows), an HTTP/2 stream that is over.
 */
function socketOf(res: ServerResponse): ServerSocket | null | undefined {
  // Read only without a socket of its own: every property read on Express's per-request objects is a slow one.
  const own: ServerSocket | null | undefined = res.socket;
  if (own !== null || !(res instanceof ServerResponse) || res.writableFinished) return own;
  return (res.req as { socket?: Socket | null } | undefined)?.socket;
}

/**
 * The responses pending on `connection`: finished ones come from the diagnostics channel, and one
 * listener on the connection catches the client leaving first, for every response on it, the ones
 * queued behind another included (Node emits nothing on a queued response whose connection goes).
 */
function pendingOn(connection: ServerSocket): Watch[] {
  let pending = connection[PENDING];
  if (pending === undefined) {
    pending = [];
    connection[PENDING] = pending;
    connection.once('close', onConnectionClose);
  }
  return pending;
}

/**
 * Whether the response can no longer end or be abandoned (nothing more will be emitted for it): its
 * connection gone (for a queued pipelined response, its request's), or, on HTTP/2 (whose compatibility
 * response has neither `closed` nor, once over, a socket), its stream closed.
 */
function alreadyOver(res: ServerResponse, socket: ServerSocket | null | undefined): boolean {
  if (res.closed) return true;
  if (socket !== null && socket !== undefined) return socket.destroyed;
  return (res as { stream?: { closed?: boolean } }).stream?.closed === true;
}

/**
 * Calls `done` once (with `argument`, if given), when the response is over: sent, or abandoned by the client. On Node ≥ 20 a
 * ServerResponse always emits 'close' (after 'finish', or when the connection goes), and that is
 * what this used to listen to; a response of Node's own HTTP/1 server is now watched with no
 * listener of its own (the server's finish channel, plus one 'close' listener per connection), a
 * listener per response costing more than everything else this does per request. Anything else
 * (HTTP/2, a response no Node server manages) still gets the one 'close' listener. `done` runs in
 * the request's async context, as on-finished's callbacks do (AsyncLocalStorage users).
 *
 * @example
 * whenResponseDone(res, () => bill(req, res));
 */
export function whenResponseDone(res: ServerResponse, done: () => void): void;
/**
 * The same, calling `done(argument)`: a function made once (not a closure per request) and the
 * request's own record as its argument.
 *
 * @example
 * whenResponseDone(res, this.onResponseDone, record);
 */
export function whenResponseDone<A>(res: ServerResponse, done: (argument: A) => void, argument: A): void;
export function whenResponseDone(res: ServerResponse, done: (argument: unknown) => void, argument?: unknown): void {
  const watch: Watch = { res, done, argument, context: new AsyncResource('metered.response'), fired: false, pending: undefined };
  const socket = socketOf(res);
  // A response whose connection (or HTTP/2 stream) is already gone emits no more 'close'.
  if (alreadyOver(res, socket)) {
    setImmediate(fire, watch);
    return;
  }
  // A connection of Node's HTTP/1 server has a parser; anything else (HTTP/2, a test harness's response) has its own 'close'.
  const connection = res instanceof ServerResponse && socket?.parser !== undefined && socket.parser !== null ? socket : undefined;
  if (connection === undefined) {
    res.once('close', () => fire(watch));
    return;
  }
  const pending = pendingOn(connection);
  if (!subscribed) {
    subscribe('http.server.response.finish', onResponseFinish);
    subscribed = true;
  }
  watch.pending = pending;
  pending.push(watch);
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
