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

/** Reads a body as text, at most `max` bytes of it; the rest is discarded and the stream destroyed. */
async function readText(body: Dispatcher.ResponseData['body'], max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    const room = max - size;
    if (chunk.length >= room) {
      chunks.push(chunk.subarray(0, room));
      body.destroy();
      break;
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  return chunks.length === 0 ? '' : Buffer.concat(chunks).toString('utf8');
}

export interface PostOptions {
  /** The bearer credential: the secret key, or a stream session token. */
  readonly bearer: string;
  readonly body?: unknown;
  /** The body already serialized as JSON (the stream's batches); wins over `body`. */
  readonly json?: string;
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

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000);
}

/** Talks to Stripe over undici: a private keep-alive agent unless the user gave a dispatcher. */
export class StripeHttp {
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly baseHeaders: Record<string, string>;

  constructor(
    private readonly config: Pick<ResolvedConfig, 'dispatcher' | 'concurrency' | 'stripeVersion' | 'requestTimeoutMs'>,
    private readonly observer: HttpObserver,
  ) {
    this.ownsDispatcher = config.dispatcher === undefined;
    this.dispatcher = config.dispatcher ?? new Agent({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS, connections: config.concurrency + 1 });
    this.baseHeaders = {
      'content-type': 'application/json',
      'stripe-version': config.stripeVersion,
      'user-agent': USER_AGENT,
    };
  }

  /**
   * POSTs JSON and returns the parsed answer; throws `StripeApiError` on any non-2xx status, and
   * `RequestTimeoutError` when the whole exchange outlasts `requestTimeoutMs`.
   */
  async post(origin: string, path: string, options: PostOptions): Promise<unknown> {
    const headers: Record<string, string> = { ...this.baseHeaders, authorization: `Bearer ${options.bearer}` };
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    if (options.context !== undefined) headers['stripe-context'] = options.context;
    const body = options.json ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    return this.exchange('POST', origin, path, headers, body, options.signal);
  }

  /** GETs a path (with its query string) under the same deadline, body cap and error mapping as `post()`. */
  async get(origin: string, path: string, options: Pick<PostOptions, 'bearer' | 'signal'>): Promise<unknown> {
    const headers = { 'stripe-version': this.config.stripeVersion, 'user-agent': USER_AGENT, authorization: `Bearer ${options.bearer}` };
    return this.exchange('GET', origin, path, headers, undefined, options.signal);
  }

  private async exchange(method: 'GET' | 'POST', origin: string, path: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal | undefined): Promise<unknown> {
    await this.observer.beforeRequest(signal);
    // undici's bodyTimeout is an idle timeout: a body dripping a byte every few seconds never trips it
    // and holds a connection for ever. One deadline covers the whole exchange. A listener on the caller's
    // signal, removed in finally, rather than AbortSignal.any(), whose dependants a long-lived signal keeps.
    const { requestTimeoutMs } = this.config;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), requestTimeoutMs).unref();
    const outer = signal;
    const forward = (): void => deadline.abort();
    if (outer?.aborted === true) deadline.abort();
    else outer?.addEventListener('abort', forward, { once: true });
    let response: Dispatcher.ResponseData;
    let text: string;
    try {
      response = await this.dispatcher.request({
        origin,
        path,
        method,
        headers,
        body,
        headersTimeout: requestTimeoutMs,
        bodyTimeout: requestTimeoutMs,
        signal: deadline.signal,
      });
      text = await readText(response.body, MAX_RESPONSE_BYTES);
    } catch (error) {
      if (deadline.signal.aborted && outer?.aborted !== true) throw new RequestTimeoutError(requestTimeoutMs);
      throw error;
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener('abort', forward);
    }
    const retryAfter = parseRetryAfter(header(response.headers, 'retry-after'));
    this.observer.afterResponse(response.statusCode, retryAfter);
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.statusCode >= 200 && response.statusCode < 300) return parsed;

    const error = (parsed as { error?: { type?: unknown; code?: unknown; message?: unknown } } | undefined)?.error;
    const shouldRetry = header(response.headers, 'stripe-should-retry');
    throw new StripeApiError(
      response.statusCode,
      typeof error?.type === 'string' ? error.type : undefined,
      typeof error?.code === 'string' ? error.code : undefined,
      typeof error?.message === 'string' ? error.message : text === '' ? undefined : text.slice(0, 200),
      retryAfter,
      shouldRetry === 'true' ? true : shouldRetry === 'false' ? false : undefined,
      header(response.headers, 'request-id'),
    );
  }

  /** Closes the private agent; a dispatcher the user gave stays theirs. */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }
}
