// Every HTTP exchange with Stripe: headers, timeouts, JSON, and Stripe's error shape into StripeApiError.
import { Agent } from 'undici';
import type { Dispatcher } from 'undici';
import { StripeApiError } from './errors';
import type { ResolvedConfig } from './config';
import type { HttpObserver } from './http-observer';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- the version travels with the package, not with the sources
const { version: PACKAGE_VERSION } = require('../package.json') as { version: string };

/** The User-Agent of every request: the package, its version and the runtime. */
export const USER_AGENT = `@metered/core/${PACKAGE_VERSION} (node ${process.version})`;

const KEEP_ALIVE_TIMEOUT_MS = 30_000;

export interface PostOptions {
  /** The bearer credential: the secret key, or a stream session token. */
  readonly bearer: string;
  readonly body?: unknown;
  /** The body already serialized as JSON (the stream's batches); wins over `body`. */
  readonly json?: string;
  /** Kept the same across every retry of one logical request. */
  readonly idempotencyKey?: string;
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
    private readonly config: ResolvedConfig,
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

  /** POSTs JSON and returns the parsed answer; throws `StripeApiError` on any non-2xx status. */
  async post(origin: string, path: string, options: PostOptions): Promise<unknown> {
    await this.observer.beforeRequest(options.signal);
    const headers: Record<string, string> = { ...this.baseHeaders, authorization: `Bearer ${options.bearer}` };
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    const response = await this.dispatcher.request({
      origin,
      path,
      method: 'POST',
      headers,
      body: options.json ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
      headersTimeout: this.config.requestTimeoutMs,
      bodyTimeout: this.config.requestTimeoutMs,
      signal: options.signal,
    });
    const text = await response.body.text();
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
