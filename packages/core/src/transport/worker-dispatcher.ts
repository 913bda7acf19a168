// deliveryThread: 'worker' — the HTTP exchange (undici, the socket writes, llhttp) on a worker thread, the rest on the main thread.
import { SHARE_ENV, Worker } from 'node:worker_threads';
import { Agent } from 'undici';
import type { Dispatcher } from 'undici';
import { MeterError } from '../errors';
import { ANSWER_HEADERS } from './http';

/**
 * The worker's whole program, plain JavaScript run with `eval: true`: it loads nowhere from the package,
 * so it starts the same from `src` under jest (TypeScript through swc, which a worker would not get) and
 * from `dist` in an install. It only moves bytes: one message in per request (`i` id, `o` origin, `p`
 * path, `m` method, `h` headers, `b` the body, `t` undici's timeouts), one message out per answer
 * (`s` status, `h` the headers metered reads, `ANSWER_HEADERS`, `b` the body bytes, transferred) or failure (`e`).
 * The deadline, the abort signal, the error mapping and the observer stay with the main thread's
 * `Exchange`, which is fed this answer as if undici had read it there. `{ c: id }` cancels one request,
 * `{ close: true }` closes the agent and ends the thread; `{ tid: true }` (the bench, to pin the thread to a
 * CPU) and `{ exit: code }` (the tests' crash) serve no request.
 */
const WORKER_SOURCE = String.raw`'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { Agent } = require(workerData.undici);
const agent = new Agent(workerData.agent);
const cap = workerData.cap;
const kept = new Set(workerData.headers);
const calls = new Map();
function send(call, message, transfer) {
  if (!calls.delete(call.id)) return;
  parentPort.postMessage(message, transfer);
}
class Call {
  constructor(id) { this.id = id; this.status = 0; this.headers = []; this.chunks = []; this.size = 0; this.abort = undefined; this.cancelled = false; }
  cancel() { this.cancelled = true; calls.delete(this.id); if (this.abort !== undefined) this.abort(); }
  onConnect(abort) { if (this.cancelled) abort(); else this.abort = abort; }
  onHeaders(status, raw) {
    if (status < 200) return true;
    this.status = status;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i].toString('latin1').toLowerCase();
      if (kept.has(name)) this.headers.push(name, raw[i + 1].toString('latin1'));
    }
    return true;
  }
  onData(chunk) {
    const left = cap - this.size;
    this.chunks.push(chunk.length < left ? chunk : chunk.subarray(0, left));
    this.size += Math.min(chunk.length, left);
    if (this.size < cap) return true;
    this.onComplete();
    this.abort();
    return false;
  }
  onComplete() {
    const body = new Uint8Array(this.size);
    let at = 0;
    for (const chunk of this.chunks) { body.set(chunk, at); at += chunk.length; }
    send(this, { i: this.id, s: this.status, h: this.headers, b: body }, [body.buffer]);
  }
  onError(error) {
    send(this, { i: this.id, e: { name: String(error && error.name), message: String(error && error.message), code: error && typeof error.code === 'string' ? error.code : undefined } });
  }
}
parentPort.on('message', (m) => {
  if (m.c !== undefined) { const call = calls.get(m.c); if (call !== undefined) call.cancel(); return; }
  if (m.close === true) { agent.close().finally(() => process.exit(0)); return; }
  if (m.tid === true) { parentPort.postMessage({ tid: require('node:fs').readlinkSync('/proc/thread-self').split('/').pop() }); return; }
  if (m.exit !== undefined) process.exit(m.exit);
  const call = new Call(m.i);
  calls.set(m.i, call);
  try {
    agent.dispatch({ origin: m.o, path: m.p, method: m.m, headers: m.h, body: m.b, headersTimeout: m.t, bodyTimeout: m.t }, call);
  } catch (error) {
    call.onError(error);
  }
});
`;

/** The answer or failure of one request, as the worker posts it. */
interface Reply {
  readonly i: number;
  readonly s?: number;
  readonly h?: readonly string[];
  readonly b?: Uint8Array;
  readonly e?: { readonly name: string; readonly message: string; readonly code: string | undefined };
  readonly tid?: string;
}

/** A failure of the worker as the in-flight requests see it: a connection reset, retried like one (their identifiers are fixed). */
function lostRequestError(why: string): Error {
  return Object.assign(new Error(`The delivery worker thread stopped (${why}) with this request in flight; it is retried on the main thread`), { code: 'ECONNRESET' });
}

/** Every live delivery worker of the process, for the tests' crash hooks and the bench's CPU pinning; not exported from the package. */
export const deliveryWorkers = new Set<Worker>();

export interface WorkerDispatcherOptions {
  /** The keep-alive agent's options, the same on either thread. */
  readonly agent: Agent.Options;
  /** The most of a response body read (`MAX_RESPONSE_BYTES`). */
  readonly maxResponseBytes: number;
  /** Told once when the worker stops unasked (crashes, exits, cannot start): delivery has moved to the main thread. */
  readonly onLost: (error: MeterError) => void;
}

/**
 * An undici-dispatcher-shaped hand-off to a worker thread: `dispatch()` posts the request (its body
 * already one JSON string or Buffer) and feeds the worker's reply to the handler — `StripeHttp`'s
 * `Exchange`, which keeps the deadline, the abort signal and the body cap on this thread as with any
 * dispatcher. The worker is referenced only while a request is in flight, so an idle reporter never keeps
 * a process alive and an in-flight one does, as a socket would. If it stops unasked, the requests in
 * flight fail as connection resets (retried with the same identifiers) and every later one goes through
 * an agent on this thread.
 */
export class WorkerDispatcher {
  #worker: Worker | undefined;
  #fallback: Agent | undefined;
  #nextId = 1;
  readonly #inFlight = new Map<number, Dispatcher.DispatchHandler>();
  #closing = false;
  #exited: Promise<void>;

  constructor(private readonly options: WorkerDispatcherOptions) {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { undici: require.resolve('undici'), agent: options.agent, cap: options.maxResponseBytes, headers: ANSWER_HEADERS },
      // The process's own environment, live: what Node's TLS reads from it (NODE_TLS_REJECT_UNAUTHORIZED) applies alike on either thread.
      env: SHARE_ENV,
    });
    worker.unref();
    worker.on('message', (reply: Reply) => this.#onReply(reply));
    let why = 'it exited';
    worker.on('error', (error: Error) => {
      why = `it threw ${error.name}`;
    });
    this.#exited = new Promise((resolve) => {
      worker.once('exit', (code) => {
        deliveryWorkers.delete(worker);
        this.#worker = undefined;
        if (!this.#closing) this.#lost(`${why}, exit code ${code}`);
        resolve();
      });
    });
    deliveryWorkers.add(worker);
    this.#worker = worker;
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const worker = this.#worker;
    if (worker === undefined) {
      if (!this.#closing) return this.#mainThread().dispatch(options, handler);
      // As a closed undici agent answers.
      handler.onError?.(Object.assign(new Error('The delivery thread is closed'), { code: 'UND_ERR_CLOSED' }));
      return false;
    }
    const id = this.#nextId++;
    if (this.#inFlight.size === 0) worker.ref();
    this.#inFlight.set(id, handler);
    worker.postMessage({ i: id, o: options.origin, p: options.path, m: options.method, h: options.headers, b: options.body, t: options.headersTimeout });
    handler.onConnect?.(() => {
      if (this.#settle(id) !== undefined) worker.postMessage({ c: id });
    });
    return true;
  }

  /** Closes the worker's agent, then the worker (or the main-thread agent after a fallback). */
  async close(): Promise<void> {
    this.#closing = true;
    const worker = this.#worker;
    if (worker !== undefined) {
      worker.ref();
      worker.postMessage({ close: true });
      await this.#exited;
    }
    await this.#fallback?.close();
  }

  /** The handler of a request in flight, forgotten: each is answered once. */
  #settle(id: number): Dispatcher.DispatchHandler | undefined {
    const handler = this.#inFlight.get(id);
    if (handler === undefined) return undefined;
    this.#inFlight.delete(id);
    if (this.#inFlight.size === 0 && !this.#closing) this.#worker?.unref();
    return handler;
  }

  #onReply(reply: Reply): void {
    // `{ tid: true }` asks the worker its Linux thread id (the bench moves it to another CPU with taskset): not a request's reply.
    if (reply.tid !== undefined) return;
    const handler = this.#settle(reply.i);
    if (handler === undefined) return;
    if (reply.e !== undefined) {
      handler.onError?.(Object.assign(new Error(reply.e.message), { name: reply.e.name, code: reply.e.code }));
      return;
    }
    const headers = reply.h!.map((value) => Buffer.from(value, 'latin1'));
    handler.onHeaders?.(reply.s!, headers, () => undefined, '');
    const body = reply.b!;
    if (body.length > 0) handler.onData?.(Buffer.from(body.buffer, body.byteOffset, body.length));
    handler.onComplete?.(null);
  }

  #lost(why: string): void {
    const error = lostRequestError(why);
    for (const id of [...this.#inFlight.keys()]) this.#settle(id)?.onError?.(error);
    this.options.onLost(new MeterError('ERR_METER_DELIVERY_WORKER', `The delivery worker thread stopped (${why}); delivery goes on on the main thread, the requests in flight are retried with the same identifiers`, { cause: error }));
  }

  #mainThread(): Agent {
    this.#fallback ??= new Agent(this.options.agent);
    return this.#fallback;
  }
}
