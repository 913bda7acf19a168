// When a response the guard meters is over, told by Node's own diagnostics channel rather than a listener on each response.
import { whenResponseDone } from '@metered/core';
import { AsyncResource } from 'node:async_hooks';
import { subscribe } from 'node:diagnostics_channel';
import { ServerResponse } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** One response being watched, on its connection's list until it finishes or the connection closes. */
interface Watched {
  readonly response: ServerResponse;
  readonly context: AsyncResource;
  readonly done: () => void;
}

/** What `http.server.response.finish` publishes (Node ≥ 16.18 / 18.7; 20 and later here). */
interface FinishMessage {
  response: unknown;
  socket: unknown;
}

// Module-local: each copy of this package keeps and ends its own responses, however many subscribe.
const WATCHED = Symbol('@metered/nestjs:watched-responses');

type Connection = Socket & { [WATCHED]?: Watched[] };

let subscribed = false;

function fire(watched: Watched): void {
  try {
    watched.context.runInAsyncScope(watched.done);
  } catch {
    // `done` never throws (metering failures go to onError); nothing may escape into Node's HTTP code.
  }
}

function take(list: Watched[], response: unknown): Watched | undefined {
  for (let i = 0; i < list.length; i += 1) {
    const watched = list[i]!;
    if (watched.response !== response) continue;
    if (i === list.length - 1) list.pop();
    else list.splice(i, 1);
    return watched;
  }
  return undefined;
}

function onFinish(message: unknown): void {
  const { response, socket } = message as FinishMessage;
  const list = (socket as Connection | null | undefined)?.[WATCHED];
  if (list === undefined || list.length === 0) return;
  const watched = take(list, response);
  if (watched !== undefined) fire(watched);
}

/** The connection went away: every response still on it is over, abandoned by its client. */
function onConnectionClose(this: Connection): void {
  const list = this[WATCHED];
  if (list === undefined) return;
  this[WATCHED] = [];
  for (const watched of list) fire(watched);
}

/**
 * Calls `done` once, when `response` is over: finished (Node's `http.server.response.finish`
 * channel, one subscriber for the process) or abandoned (its connection closed first: one
 * `'close'` listener per connection, not per request, so keep-alive connections pay it once).
 * `done` runs in the request's async context. Where either is missing (a response that is not
 * Node's, a connection already gone), it falls back to core's listener on the response.
 *
 * Compared with a `'close'` listener on every response, this spares each request an
 * `EventEmitter` listener added and removed (docs/BENCHMARKS.md).
 */
export function watchResponse(request: IncomingMessage, response: ServerResponse, done: () => void): void {
  const socket = request.socket as Connection | null;
  if (!(response instanceof ServerResponse) || socket === null || socket.destroyed || response.closed) {
    whenResponseDone(response, done);
    return;
  }
  if (!subscribed) {
    subscribe('http.server.response.finish', onFinish);
    subscribed = true;
  }
  let list = socket[WATCHED];
  if (list === undefined) {
    list = [];
    socket[WATCHED] = list;
    socket.once('close', onConnectionClose);
  }
  list.push({ response, context: new AsyncResource('metered.response'), done });
}
