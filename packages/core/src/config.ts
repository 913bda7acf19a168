// Options are parsed once, here, into a frozen resolved config; every default is named below.
import type { Dispatcher } from 'undici';
import { MeterConfigError } from './errors';
import { registerSecret } from './redact';
import type { ResolvedAggregate } from './aggregate/aggregator';
import { resolveAggregate } from './aggregate/options';
import { resolveMetrics } from './metrics/metrics';
import type { ResolvedMetrics } from './metrics/metrics';
import type { MeterError } from './errors';
import { DEFAULT_LEDGER_RETENTION_MS, DEFAULT_MEMORY_LEDGER_RETENTION_MS } from './store/ledger';
import type { DurableEventStore } from './store/types';
import type { DeliveryMode, DeliveryThread, DropReason, MeterEvent, MeterLogger, MeterReporterOptions, OverflowPolicy, ReporterSpoolOptions, RequestLimiter } from './types';

export const DEFAULT_API_BASE_URL = 'https://api.stripe.com';
export const DEFAULT_METER_EVENTS_BASE_URL = 'https://meter-events.stripe.com';
/** The API version stripe-node 23.1 pins; the wire format was checked against it. */
export const DEFAULT_STRIPE_VERSION = '2026-10-28.endive';
export const DEFAULT_MODE: DeliveryMode = 'stream';
/** Where the HTTP exchange runs; see `MeterReporterOptions.deliveryThread` and bench/NOTES.md for the measurement. */
export const DEFAULT_DELIVERY_THREAD: DeliveryThread = 'main';
/** Stripe's ceiling of events per stream request. */
export const MAX_STREAM_BATCH = 100;
export const DEFAULT_FLUSH_INTERVAL_MS = 1000;
export const DEFAULT_MAX_QUEUE_SIZE = 100_000;
export const DEFAULT_OVERFLOW: OverflowPolicy = 'drop-oldest';
/** Sandbox allows 25 requests/s for all of an account's calls; leave room for the app's own. */
export const DEFAULT_TEST_MODE_RPS = 20;
/** Stripe's documented live limit for meter_event_stream. */
export const DEFAULT_LIVE_STREAM_RPS = 10_000;
/** Stripe's documented live limit for meter_events. */
export const DEFAULT_LIVE_DIRECT_RPS = 1000;
export const DEFAULT_STREAM_CONCURRENCY = 4;
export const DEFAULT_DIRECT_CONCURRENCY = 8;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_ATTEMPTS = 8;
export const DEFAULT_INITIAL_DELAY_MS = 250;
export const DEFAULT_MAX_DELAY_MS = 30_000;
/**
 * How long a batch hit by transient failures (outage, 5xx, 429, resets) is retried before it goes to
 * `onError`: an hour rides out all but the longest Stripe incidents, and leaves 23 of Stripe's 24
 * deduplication hours for re-reporting a dead letter without any risk of billing it twice.
 */
export const DEFAULT_MAX_ELAPSED_MS = 3_600_000;
export const DEFAULT_CUSTOMER_KEY = 'stripe_customer_id';
export const DEFAULT_VALUE_KEY = 'value';
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
/**
 * How long a plain `flush()` waits: a minute covers several retries of every batch through a short
 * blip, and no script or deploy hangs on an outage; what is still pending stays queued and retried.
 */
export const DEFAULT_FLUSH_TIMEOUT_MS = 60_000;
/** A session is renewed this long before Stripe's `expires_at`, so no request races the expiry. */
export const SESSION_REFRESH_MARGIN_MS = 60_000;
/** The longest delay a Node timer takes (2^31 − 1 ms, ~24.8 days): a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * Stripe deduplicates identifiers for 24 h. A batch still being retried after that could be counted twice
 * (its first attempt may have arrived), so no retry budget may reach it.
 */
export const MAX_RETRY_ELAPSED_MS = 24 * 60 * 60 * 1000;

const KEY_PATTERN = /^(sk|rk)_(test|live)_[A-Za-z0-9_-]+$/;
const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['drop-oldest', 'drop-newest', 'reject'];
const MODES: readonly DeliveryMode[] = ['stream', 'direct'];
const DELIVERY_THREADS: readonly DeliveryThread[] = ['main', 'worker'];
const KNOWN_RETRY_OPTIONS = new Set<string>(['maxAttempts', 'initialDelayMs', 'maxDelayMs', 'maxElapsedMs']);
const KNOWN_PAYLOAD_KEYS = new Set<string>(['customer', 'value']);
const KNOWN_OPTIONS = new Set<string>([
  'apiKey', 'mode', 'apiBaseUrl', 'meterEventsBaseUrl', 'stripeVersion', 'maxBatchSize', 'flushIntervalMs',
  'maxQueueSize', 'overflow', 'maxRequestsPerSecond', 'concurrency', 'requestTimeoutMs', 'retry', 'payloadKeys',
  'logger', 'onError', 'onDrop', 'dispatcher', 'spool', 'store', 'rateLimiter', 'aggregate', 'instanceId', 'waitUntil', 'metrics',
  'deliveryThread', 'ledgerRetentionMs',
]);
// The values are checked where the spool opens (SpoolStore.open), under the same `spool.` option names.
const KNOWN_SPOOL_OPTIONS = new Set<string>(['path', 'durability', 'synchronous', 'maxBytes', 'resendWithinMs', 'ledgerRetentionMs']);
const STORE_METHODS = ['push', 'shift', 'take', 'unshift', 'drain', 'hasRoomFor', 'markAttempted', 'settle', 'discard', 'recover', 'commit', 'ledger', 'close'] as const;

export interface ResolvedConfig {
  readonly apiKey: string;
  readonly livemode: boolean;
  readonly mode: DeliveryMode;
  readonly apiOrigin: string;
  readonly meterEventsOrigin: string;
  readonly stripeVersion: string;
  readonly maxBatchSize: number;
  readonly flushIntervalMs: number;
  readonly maxQueueSize: number;
  readonly overflow: OverflowPolicy;
  readonly maxRequestsPerSecond: number;
  readonly concurrency: number;
  readonly requestTimeoutMs: number;
  readonly retry: Readonly<{ maxAttempts: number; initialDelayMs: number; maxDelayMs: number; maxElapsedMs: number }>;
  readonly customerKey: string;
  readonly valueKey: string;
  readonly logger: MeterLogger | undefined;
  readonly onError: ((error: MeterError, events: readonly MeterEvent[]) => void) | undefined;
  readonly onDrop: ((events: readonly MeterEvent[], reason: DropReason) => void) | undefined;
  readonly dispatcher: Dispatcher | undefined;
  readonly deliveryThread: DeliveryThread;
  readonly spool: Readonly<ReporterSpoolOptions> | undefined;
  readonly store: DurableEventStore | undefined;
  /** How long the memory store's ledger keeps an hour. */
  readonly ledgerRetentionMs: number;
  readonly rateLimiter: RequestLimiter | undefined;
  readonly aggregate: ResolvedAggregate | undefined;
  readonly waitUntil: ((promise: Promise<unknown>) => void) | undefined;
  readonly metrics: ResolvedMetrics;
}

/** A value as it reads in an error message. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  return typeof value;
}

/**
 * Checks that `options` is an object naming only `known` options; `owner` is who takes them, as the
 * message names it. `notAnObject` gets the value as it reads in a message.
 */
export function checkOptionKeys(options: unknown, owner: string, known: ReadonlySet<string>, notAnObject: (shown: string) => string): asserts options is object {
  if (options === null || typeof options !== 'object') throw new MeterConfigError('options', notAnObject(show(options)));
  for (const key of Object.keys(options)) {
    if (!known.has(key)) throw new MeterConfigError(key, `is not an option of ${owner} (known: ${[...known].join(', ')})`);
  }
}

function positiveInt(option: string, value: unknown, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new MeterConfigError(option, `must be an integer from 1 to ${max}, got ${show(value)}`);
  }
  return value;
}

function nonNegativeInt(option: string, value: unknown, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new MeterConfigError(option, `must be an integer from 0 to ${max}, got ${show(value)}`);
  }
  return value;
}

function positiveNumber(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new MeterConfigError(option, `must be a finite number above 0, got ${show(value)}`);
  }
  return value;
}

function origin(option: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  let url: URL;
  try {
    url = new URL(typeof value === 'string' ? value : show(value));
  } catch {
    throw new MeterConfigError(option, `must be an absolute http(s) URL, got ${show(value)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new MeterConfigError(option, `must be an http(s) URL, got protocol ${url.protocol}`);
  }
  if (url.pathname !== '/' || url.search || url.hash) {
    throw new MeterConfigError(option, `must be an origin without path, query or hash (${url.origin})`);
  }
  return url.origin;
}

function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) {
    throw new MeterConfigError(option, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${show(value)}`);
  }
  return value as T;
}

function payloadKey(option: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value.length === 0 || value.length > 100) {
    throw new MeterConfigError(option, 'must be a string of 1–100 characters');
  }
  return value;
}

function optionalFunction<T>(option: string, value: unknown): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new MeterConfigError(option, `must be a function, got ${typeof value}`);
  return value as T;
}

/** Checks every option and fills in defaults; throws `MeterConfigError` naming the first bad option. */
export function resolveConfig(options: MeterReporterOptions): ResolvedConfig {
  checkOptionKeys(options, 'MeterReporter', KNOWN_OPTIONS, () => 'must be an object with at least apiKey');
  const { apiKey } = options;
  if (typeof apiKey !== 'string' || apiKey.length === 0) {
    throw new MeterConfigError('apiKey', 'is required: a Stripe secret key (sk_test_…, sk_live_…) or restricted key (rk_…)');
  }
  const keyMatch = KEY_PATTERN.exec(apiKey);
  if (!keyMatch) {
    throw new MeterConfigError('apiKey', 'must be a Stripe secret key (sk_test_…, sk_live_…) or restricted key (rk_test_…, rk_live_…); publishable keys (pk_…) cannot send meter events');
  }
  const livemode = keyMatch[2] === 'live';
  // Redacted literally wherever it appears, whatever it is glued to: the pattern alone needs word boundaries.
  registerSecret(apiKey);
  const mode = oneOf('mode', options.mode, MODES, DEFAULT_MODE);

  const maxBatchSize = positiveInt('maxBatchSize', options.maxBatchSize, MAX_STREAM_BATCH, MAX_STREAM_BATCH);
  const defaultRps = !livemode ? DEFAULT_TEST_MODE_RPS : mode === 'stream' ? DEFAULT_LIVE_STREAM_RPS : DEFAULT_LIVE_DIRECT_RPS;

  const retry = options.retry ?? {};
  checkOptionKeys(retry, 'retry', KNOWN_RETRY_OPTIONS, (shown) => `must be an object, got ${shown}`);
  const payloadKeys = options.payloadKeys ?? {};
  checkOptionKeys(payloadKeys, 'payloadKeys', KNOWN_PAYLOAD_KEYS, (shown) => `must be an object, got ${shown}`);
  const customerKey = payloadKey('payloadKeys.customer', payloadKeys.customer, DEFAULT_CUSTOMER_KEY);
  const valueKey = payloadKey('payloadKeys.value', payloadKeys.value, DEFAULT_VALUE_KEY);
  if (customerKey === valueKey) throw new MeterConfigError('payloadKeys', 'customer and value must be different keys');

  const resolvedRetry = Object.freeze({
    maxAttempts: positiveInt('retry.maxAttempts', retry.maxAttempts, DEFAULT_MAX_ATTEMPTS, 1000),
    initialDelayMs: nonNegativeInt('retry.initialDelayMs', retry.initialDelayMs, DEFAULT_INITIAL_DELAY_MS, MAX_TIMER_MS),
    maxDelayMs: nonNegativeInt('retry.maxDelayMs', retry.maxDelayMs, DEFAULT_MAX_DELAY_MS, MAX_TIMER_MS),
    maxElapsedMs: nonNegativeInt('retry.maxElapsedMs', retry.maxElapsedMs, DEFAULT_MAX_ELAPSED_MS, MAX_RETRY_ELAPSED_MS),
  });
  if (resolvedRetry.maxDelayMs < resolvedRetry.initialDelayMs) {
    throw new MeterConfigError('retry.maxDelayMs', `must be at least retry.initialDelayMs (${resolvedRetry.initialDelayMs})`);
  }

  const logger = options.logger;
  if (logger !== undefined && (typeof logger !== 'object' || logger === null || typeof logger.warn !== 'function' || typeof logger.error !== 'function')) {
    throw new MeterConfigError('logger', 'must be a pino-compatible logger with at least warn() and error()');
  }
  const dispatcher = options.dispatcher;
  if (dispatcher !== undefined && (typeof dispatcher !== 'object' || dispatcher === null || typeof dispatcher.dispatch !== 'function')) {
    throw new MeterConfigError('dispatcher', 'must be an undici Dispatcher (Agent, Pool, MockAgent, …)');
  }
  const deliveryThread = oneOf('deliveryThread', options.deliveryThread, DELIVERY_THREADS, DEFAULT_DELIVERY_THREAD);
  if (deliveryThread === 'worker' && dispatcher !== undefined) {
    throw new MeterConfigError('deliveryThread', "cannot be 'worker' with a dispatcher of your own: a dispatcher cannot cross to another thread; leave out one of the two");
  }
  if (typeof options.stripeVersion !== 'undefined' && (typeof options.stripeVersion !== 'string' || options.stripeVersion.length === 0)) {
    throw new MeterConfigError('stripeVersion', 'must be a non-empty string such as 2026-10-28.endive');
  }

  const { spool, store } = options;
  if (spool !== undefined) {
    if (spool === null || typeof spool !== 'object') throw new MeterConfigError('spool', `must be an object with a path, got ${show(spool)}`);
    for (const key of Object.keys(spool)) {
      if (!KNOWN_SPOOL_OPTIONS.has(key)) throw new MeterConfigError(`spool.${key}`, `is not an option of the spool (known: ${[...KNOWN_SPOOL_OPTIONS].join(', ')})`);
    }
  }
  if (store !== undefined) {
    const missing = store === null || typeof store !== 'object' ? 'push' : STORE_METHODS.find((name) => typeof store[name] !== 'function');
    if (missing !== undefined) throw new MeterConfigError('store', `must be a DurableEventStore (its ${missing}() is missing)`);
    if (spool !== undefined) throw new MeterConfigError('store', 'cannot be given together with spool: the spool is a store; give one or the other');
  }

  const rateLimiter = options.rateLimiter;
  if (rateLimiter !== undefined && (rateLimiter === null || typeof rateLimiter !== 'object' || typeof rateLimiter.acquire !== 'function' || typeof rateLimiter.pauseUntil !== 'function')) {
    throw new MeterConfigError('rateLimiter', 'must be a RequestLimiter (an object with acquire(signal) and pauseUntil(until))');
  }

  return Object.freeze({
    apiKey,
    livemode,
    mode,
    apiOrigin: origin('apiBaseUrl', options.apiBaseUrl, DEFAULT_API_BASE_URL),
    meterEventsOrigin: origin('meterEventsBaseUrl', options.meterEventsBaseUrl, DEFAULT_METER_EVENTS_BASE_URL),
    stripeVersion: options.stripeVersion ?? DEFAULT_STRIPE_VERSION,
    maxBatchSize: mode === 'direct' ? 1 : maxBatchSize,
    flushIntervalMs: positiveInt('flushIntervalMs', options.flushIntervalMs, DEFAULT_FLUSH_INTERVAL_MS, MAX_TIMER_MS),
    maxQueueSize: positiveInt('maxQueueSize', options.maxQueueSize, DEFAULT_MAX_QUEUE_SIZE),
    overflow: oneOf('overflow', options.overflow, OVERFLOW_POLICIES, DEFAULT_OVERFLOW),
    maxRequestsPerSecond: positiveNumber('maxRequestsPerSecond', options.maxRequestsPerSecond, defaultRps),
    concurrency: positiveInt('concurrency', options.concurrency, mode === 'stream' ? DEFAULT_STREAM_CONCURRENCY : DEFAULT_DIRECT_CONCURRENCY, 1024),
    requestTimeoutMs: positiveInt('requestTimeoutMs', options.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS, MAX_TIMER_MS),
    retry: resolvedRetry,
    customerKey,
    valueKey,
    logger,
    onError: optionalFunction<ResolvedConfig['onError']>('onError', options.onError),
    onDrop: optionalFunction<ResolvedConfig['onDrop']>('onDrop', options.onDrop),
    dispatcher,
    deliveryThread,
    spool: spool === undefined ? undefined : Object.freeze({ ...spool }),
    store,
    ledgerRetentionMs: positiveInt('ledgerRetentionMs', options.ledgerRetentionMs, DEFAULT_MEMORY_LEDGER_RETENTION_MS, DEFAULT_LEDGER_RETENTION_MS),
    rateLimiter,
    aggregate: resolveAggregate(options.aggregate, options.instanceId),
    waitUntil: optionalFunction<ResolvedConfig['waitUntil']>('waitUntil', options.waitUntil),
    metrics: resolveMetrics(options.metrics),
  });
}
