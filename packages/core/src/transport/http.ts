// Every HTTP exchange with Stripe: headers, timeouts, JSON, and Stripe's error shape into StripeApiError.
import { Agent } from 'undici';
import type { Dispatcher } from 'undici';
import { StripeApiError } from '../errors';
import type { ResolvedConfig } from '../config';
import type { HttpObserver } from './http-observer';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- the version travels with the package, not with the sources
const { version: PACKAGE_VERSION } = require('../../package.json') as { version: string };

/** The User-Agent of every request: the package, its version and the runtime. */
export const USER_AGENT = `@metered/core/${PACKAGE_VERSION} (node ${process.version})`;

const KEEP_ALIVE_TIMEOUT_MS = 30_000;
/**
 * The most of a response body read. Stripe's answers here are under a few KB; a larger body (a hostile or
 * broken proxy) is cut off rather than buffered, and what was read is parsed as far as it goes.
 */
export const MAX_RESPONSE_BYTES = 256 * 1024;

/** A request that did not complete within `requestTimeoutMs`, headers and body together; retriable like a network timeout. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError';
  /** The code retry policy and users read, the same as a socket timeout's. */
  readonly code = 'ETIMEDOUT';
  constructor(timeoutMs: number) {
    super(`Stripe did not answer within requestTimeoutMs (${timeoutMs} ms, headers and body together)`);
  }
}

/** A response as read: status, raw header lines and the body text (at most `MAX_RESPONSE_BYTES` of it). */
interface Answer {
  readonly status: number;
  readonly rawHeaders: readonly Buffer[];
  readonly text: string;
}

/**
 * The exchanges in flight on each abort signal. Every request of a reporter passes the same signal (its
 * shutdown); one 'abort' listener per signal fails them all. A listener added and removed per exchange
 * (Node's EventTarget, JS that runs cold when exchanges come ~60 a second) was 2.7% of the request
 * thread's CPU samples at that rate; a Set add and delete instead.
 */
const exchangesBySignal = new WeakMap<AbortSignal, Set<Exchange>>();

function watchAbort(signal: AbortSignal, exchange: Exchange): void {
  let exchanges = exchangesBySignal.get(signal);
  if (exchanges === undefined) {
    const watched = new Set<Exchange>();
    exchanges = watched;
    exchangesBySignal.set(signal, watched);
    signal.addEventListener(
      'abort',
      () => {
        exchangesBySignal.delete(signal);
        for (const each of [...watched]) each.abortFromSignal(signal.reason as Error);
      },
      { once: true },
    );
  }
  exchanges.add(exchange);
}

/**
 * One exchange as an undici dispatch handler. `dispatcher.request()` gave every response a Readable
 * body stream, read here through an async iterator, and an AbortController for the deadline: in the
 * delivery benchmark's CPU profile that machinery cost more than the request itself. The handler
 * gathers the body's chunks itself and aborts through undici's own `abort`. It implements undici's
 * original handler interface (`onConnect`…`onError`), which every undici dispatcher takes (5, 6 and 7,
 * `MockAgent`, Node's bundled global one) and which undici 7 runs without wrapping it.
 */
class Exchange {
  #status = 0;
  #rawHeaders: readonly Buffer[] = [];
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #abort: ((error?: Error) => void) | undefined;
  /** Why the exchange ended before undici handed over its `abort`: applied as soon as it does. */
  #abortReason: Error | undefined;
  #settled = false;
  readonly #timer: NodeJS.Timeout;
  readonly #outer: AbortSignal | undefined;

  constructor(
    private readonly resolve: (answer: Answer) => void,
    private readonly reject: (error: unknown) => void,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ) {
    this.#timer = setTimeout(() => this.#fail(new RequestTimeoutError(timeoutMs), true), timeoutMs).unref();
    this.#outer = signal;
    if (signal?.aborted === true) this.#fail(signal.reason as Error, true);
    else if (signal !== undefined) watchAbort(signal, this);
  }

  /** The caller's signal aborted while this exchange was in flight. */
  abortFromSignal(reason: Error): void {
    this.#fail(reason, true);
  }

  onConnect(abort: (error?: Error) => void): void {
    if (this.#abortReason !== undefined) abort(this.#abortReason);
    else this.#abort = abort;
  }

  onHeaders(status: number, rawHeaders: Buffer[] | null, _resume: () => void): boolean {
    // 1xx informational answers come before the real one and are skipped.
    if (status < 200) return true;
    this.#status = status;
    this.#rawHeaders = rawHeaders ?? [];
    return true;
  }

  onData(chunk: Buffer): boolean {
    const room = MAX_RESPONSE_BYTES - this.#size;
    if (chunk.length < room) {
      this.#chunks.push(chunk);
      this.#size += chunk.length;
      return true;
    }
    // Past the cap: what was read is the answer, the rest is not read and the connection is dropped.
    this.#chunks.push(chunk.subarray(0, room));
    this.#finish();
    this.#abort?.();
    return false;
  }

  onComplete(): void {
    this.#finish();
  }

  onError(error: Error): void {
    this.#fail(error, false);
  }

  #finish(): void {
    if (!this.#end()) return;
    const chunks = this.#chunks;
    const text = chunks.length === 0 ? '' : chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
    this.resolve({ status: this.#status, rawHeaders: this.#rawHeaders, text });
  }

  #fail(error: unknown, abort: boolean): void {
    if (!this.#end()) return;
    if (abort) {
      if (this.#abort === undefined) this.#abortReason = error as Error;
      else this.#abort(error as Error);
    }
    this.reject(error);
  }

  /** True the first time only: an exchange settles once, whatever undici calls after that. */
  #end(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    clearTimeout(this.#timer);
    if (this.#outer !== undefined) exchangesBySignal.get(this.#outer)?.delete(this);
    return true;
  }
}

/** The only response headers read (below): a worker thread hands back these and no others. */
export const ANSWER_HEADERS = ['retry-after', 'stripe-should-retry', 'request-id'] as const;
type AnswerHeader = (typeof ANSWER_HEADERS)[number];

/** The value of a response header (the first, when sent more than once). */
function header(rawHeaders: readonly Buffer[], name: AnswerHeader): string | undefined {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const key = rawHeaders[i]!;
    if (key.length === name.length && key.toString('latin1').toLowerCase() === name) return rawHeaders[i + 1]!.toString('latin1');
  }
  return undefined;
}

export interface PostOptions {
  /** The bearer credential: the secret key, or a stream session token. */
  readonly bearer: string;
  readonly body?: unknown;
  /** The body already serialized as JSON (the stream's batches, as UTF-8 bytes); wins over `body`. */
  readonly json?: string | Buffer;
  /** Kept the same across every retry of one logical request. */
  readonly idempotencyKey?: string;
  /**
   * The connected account the request acts for, sent as `Stripe-Context` (V2's successor of
   * `Stripe-Account`: https://docs.stripe.com/context; stripe-node 23.1 sends its `stripeContext`
   * request option as this header). Undefined: the key's own account.
   */
  readonly context?: string | undefined;
  readonly signal?: AbortSignal;
}

/** Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

/** The private keep-alive agent's options, on whichever thread it runs. */
export function agentOptions(concurrency: number): Agent.Options {
  return { keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, connections: concurrency + 1 };
}

/** What the exchanges go through: an undici dispatcher, or the worker-thread hand-off (`WorkerDispatcher`). */
export interface ExchangeDispatcher {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
}

/** Talks to Stripe over undici: a private keep-alive agent (or `own`, the worker hand-off) unless the user gave a dispatcher. */
export class StripeHttp {
  private readonly dispatcher: ExchangeDispatcher;
  private readonly ownsDispatcher: boolean;

  constructor(
    private readonly config: Pick<ResolvedConfig, 'dispatcher' | 'concurrency' | 'stripeVersion' | 'requestTimeoutMs'>,
    private readonly observer: HttpObserver,
    own?: ExchangeDispatcher,
  ) {
    this.ownsDispatcher = config.dispatcher === undefined;
    this.dispatcher = config.dispatcher ?? own ?? new Agent(agentOptions(config.concurrency));
  }

  /**
   * POSTs JSON and returns the parsed answer; throws `StripeApiError` on any non-2xx status, and
   * `RequestTimeoutError` when the whole exchange outlasts `requestTimeoutMs`.
   */
  async post(origin: string, path: string, options: PostOptions): Promise<unknown> {
    // One literal with every header's slot: `{ ...base, authorization }` made V8 add the last key through its
    // slow path on every call (1.4 µs against 0.02 µs, hot, in a microbenchmark) and left undici a dictionary-mode object.
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'stripe-version': this.config.stripeVersion,
      'user-agent': USER_AGENT,
      authorization: `Bearer ${options.bearer}`,
    };
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    if (options.context !== undefined) headers['stripe-context'] = options.context;
    const body = options.json ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    return this.exchange('POST', origin, path, headers, body, options.signal);
  }

  /** GETs a path (with its query string) under the same deadline, body cap and error mapping as `post()`. */
  async get(origin: string, path: string, options: Pick<PostOptions, 'bearer' | 'signal' | 'context'>): Promise<unknown> {
    const headers: Record<string, string> = { 'stripe-version': this.config.stripeVersion, 'user-agent': USER_AGENT, authorization: `Bearer ${options.bearer}` };
    if (options.context !== undefined) headers['stripe-context'] = options.context;
    return this.exchange('GET', origin, path, headers, undefined, options.signal);
  }

  private async exchange(method: 'GET' | 'POST', origin: string, path: string, headers: Record<string, string>, body: string | Buffer | undefined, signal: AbortSignal | undefined): Promise<unknown> {
    await this.observer.beforeRequest(signal);
    // undici's bodyTimeout is an idle timeout: a body dripping a byte every few seconds never trips it
    // and holds a connection for ever. One deadline covers the whole exchange (`Exchange`).
    const { requestTimeoutMs } = this.config;
    const response = await new Promise<Answer>((resolve, reject) => {
      const exchange = new Exchange(resolve, reject, requestTimeoutMs, signal);
      try {
        this.dispatcher.dispatch({ origin, path, method, headers, body, headersTimeout: requestTimeoutMs, bodyTimeout: requestTimeoutMs }, exchange);
      } catch (error) {
        // undici hands a refused dispatch to onError; a dispatcher of the user's own may throw instead.
        exchange.onError(error as Error);
      }
    });
    const { status, rawHeaders, text } = response;
    const retryAfter = parseRetryAfter(header(rawHeaders, 'retry-after'));
    this.observer.afterResponse(status, retryAfter);
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (status >= 200 && status < 300) return parsed;

    const error = (parsed as { error?: { type?: unknown; code?: unknown; message?: unknown } } | undefined)?.error;
    const shouldRetry = header(rawHeaders, 'stripe-should-retry');
    throw new StripeApiError(
      status,
      typeof error?.type === 'string' ? error.type : undefined,
      typeof error?.code === 'string' ? error.code : undefined,
      typeof error?.message === 'string' ? error.message : text === '' ? undefined : text.slice(0, 200),
      retryAfter,
      shouldRetry === 'true' ? true : shouldRetry === 'false' ? false : undefined,
      header(rawHeaders, 'request-id'),
    );
  }

  /** Closes the private agent; a dispatcher the user gave stays theirs. */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }
}
