// Public types of @metered/core: what users pass in and what they get back.
import type { Dispatcher } from 'undici';
import type { MeterError } from './errors';
import type { DurableEventStore, SpoolOptions } from './store/types';

/** How events reach Stripe. */
export type DeliveryMode = 'stream' | 'direct';

/** Which thread runs the HTTP exchange with Stripe (undici, the socket writes, parsing the answer). */
export type DeliveryThread = 'main' | 'worker';

/** What `report()` does when the queue is full. */
export type OverflowPolicy = 'drop-oldest' | 'drop-newest' | 'reject';

/** Why an accepted event was dropped without being delivered. */
export type DropReason = 'overflow' | 'shutdown' | 'expired';

/** One usage event, as given to `report()`. */
export interface MeterEventInput {
  /** The meter's `event_name`; 1–100 characters. */
  eventName: string;
  /** The Stripe customer id (`cus_…`) billed for this usage; a non-empty string. */
  customerId: string;
  /**
   * How much was used: a positive integer with at most 15 significant digits, as a number, bigint
   * or string of digits.
   * @default 1
   */
  value?: number | bigint | string;
  /**
   * When the usage happened: a `Date`, milliseconds since the epoch, or an RFC 3339 string. Within
   * the past 35 days and at most 5 minutes ahead.
   * @default the time of the `report()` call
   */
  timestamp?: Date | number | string;
  /**
   * Stripe's deduplication key (1–100 characters, unique in a rolling 24 h). Give one to make a
   * repeated report of the same usage count once.
   * @default a generated collision-safe identifier
   */
  identifier?: string;
  /** Extra payload keys for the meter's dimensions; values are strings. */
  dimensions?: Readonly<Record<string, string>>;
  /**
   * The Stripe Connect account (`acct_…`) whose meter this usage goes to, sent as the `Stripe-Context`
   * header; events of different accounts never share a session or a request.
   * @default undefined (the platform's own account)
   */
  account?: string;
}

/** An accepted event, as handed to `onError` and `onDrop` (it can be re-reported as it is). */
export interface MeterEvent {
  readonly eventName: string;
  readonly customerId: string;
  /** The value as Stripe receives it: a string of digits. */
  readonly value: string;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
  readonly identifier: string;
  readonly dimensions?: Readonly<Record<string, string>> | undefined;
  /** The connected account (`acct_…`), or undefined for the platform. */
  readonly account?: string | undefined;
}

/** Retry policy for requests to Stripe. */
export interface RetryOptions {
  /**
   * Attempts per request, the first included, for answers Stripe marks `Stripe-Should-Retry: true`
   * although their status is final. Transient failures (network errors, 5xx, 408, 409, 429, an
   * expired session) are not counted: they are retried for as long as `maxElapsedMs` allows.
   * @default 8
   */
  maxAttempts?: number;
  /**
   * Upper bound of the first backoff (full jitter picks a delay in [0, bound]).
   * @default 250
   */
  initialDelayMs?: number;
  /**
   * Largest backoff bound between two attempts.
   * @default 30000
   */
  maxDelayMs?: number;
  /**
   * Total time a batch may spend retrying transient failures before its events are handed to
   * `onError`; at most 24 h (Stripe's deduplication window). A batch answered 429 is retried for
   * at least 23 h, as a rate limit means Stripe is up.
   * @default 3600000 (1 hour)
   */
  maxElapsedMs?: number;
}

/** Payload keys configured on the Stripe meter. */
export interface PayloadKeys {
  /**
   * The meter's `customer_mapping.event_payload_key`.
   * @default 'stripe_customer_id'
   */
  customer?: string;
  /**
   * The meter's `value_settings.event_payload_key`.
   * @default 'value'
   */
  value?: string;
}

/** A pino-compatible logger: `(object, message)` calls. Missing levels are skipped. */
export interface MeterLogger {
  debug?(obj: object, msg?: string): void;
  info?(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Options of `new MeterReporter(options)`. */
export interface MeterReporterOptions {
  /** Stripe secret or restricted key (`sk_test_…`, `sk_live_…`, `rk_…`). Required; never logged. */
  apiKey: string;
  /**
   * `'stream'`: batches of up to 100 events over `meter_event_stream` with a 15-minute session;
   * `'direct'`: one event per `POST /v2/billing/meter_events`.
   * @default 'stream'
   */
  mode?: DeliveryMode;
  /**
   * Base URL of Stripe's API (sessions, direct events, adjustments).
   * @default 'https://api.stripe.com'
   */
  apiBaseUrl?: string;
  /**
   * Base URL of Stripe's meter-events host (the stream).
   * @default 'https://meter-events.stripe.com'
   */
  meterEventsBaseUrl?: string;
  /**
   * The API version sent as `Stripe-Version`.
   * @default '2026-10-28.endive' (the version stripe-node 23.1 pins)
   */
  stripeVersion?: string;
  /**
   * Most events in one stream request (1–100). Direct mode always sends one.
   * @default 100
   */
  maxBatchSize?: number;
  /**
   * A partial batch waits at most this long before it is sent.
   * @default 1000
   */
  flushIntervalMs?: number;
  /**
   * Most events waiting to be sent (queued, not yet in flight); past it `overflow` decides.
   * @default 100000
   */
  maxQueueSize?: number;
  /**
   * When the queue is full: drop the oldest queued event, drop the new one, or throw
   * `MeterQueueFullError` from `report()`. Dropped events go to `onDrop`.
   * @default 'drop-oldest'
   */
  overflow?: OverflowPolicy;
  /**
   * Requests per second to Stripe, across all of this reporter's requests.
   * @default 20 for test-mode keys (Stripe's sandbox allows 25/s for all calls together),
   * 10000 for live keys in stream mode, 1000 for live keys in direct mode
   */
  maxRequestsPerSecond?: number;
  /**
   * Requests in flight at once.
   * @default 4 in stream mode, 8 in direct mode
   */
  concurrency?: number;
  /**
   * Time allowed for one request to Stripe, from sending it to the last byte of the answer (a body that
   * drips slowly is cut off too); a timed-out request is retried like a network failure. At most 2^31 − 1.
   * @default 10000
   */
  requestTimeoutMs?: number;
  /** Retry policy; see `RetryOptions` for each default. */
  retry?: RetryOptions;
  /** The meter's payload keys for customer and value; see `PayloadKeys`. */
  payloadKeys?: PayloadKeys;
  /**
   * Where the reporter logs (pino-compatible).
   * @default debug lines through `NODE_DEBUG=metered`; warnings and errors as process warnings
   */
  logger?: MeterLogger;
  /**
   * Called with events that Stripe refused or that could not be delivered within the retry policy
   * (a dead letter), and with adapter failures (no events). A refused API key is reported once
   * per outage as `MeterUnauthorizedError` with no events: they stay queued.
   * @default undefined (the logger's `error`)
   */
  onError?: (error: MeterError, events: readonly MeterEvent[]) => void;
  /**
   * Called with accepted events dropped undelivered (queue overflow, shutdown, too old), in one
   * call per batch or per turn of the event loop (overflow), never once per event.
   * Their identifiers are kept, so re-reporting them later can never bill twice.
   * @default undefined (the logger's `warn`)
   */
  onDrop?: (events: readonly MeterEvent[], reason: DropReason) => void;
  /**
   * An undici dispatcher for every request (a proxy agent, a `MockAgent`). The global dispatcher
   * is never used or changed.
   * @default a private keep-alive `Agent`
   */
  dispatcher?: Dispatcher;
  /**
   * `'worker'` moves the HTTP exchange with Stripe (undici, the socket writes, reading and parsing the
   * answer) to a worker thread; batching, pacing, retries, the session and the store stay on the main
   * thread, which hands over each request as one JSON string. It pays only where a core is spare (see
   * the package README). The worker never keeps an idle process alive, is closed by `close()`, and if it
   * stops unasked its requests in flight are retried on the main thread, where delivery goes on
   * (`onError` is told once, `ERR_METER_DELIVERY_WORKER`). Not with `dispatcher`.
   * @default 'main'
   */
  deliveryThread?: DeliveryThread;
  /**
   * Keeps accepted events in a SQLite file (`better-sqlite3@12`, an optional peer) until Stripe has
   * them, so a crash, SIGKILL or deploy loses none past its durability point and the next start
   * resends them with their identifiers. A spool that cannot be opened (locked by another process,
   * damaged, read-only, full) is a coded error through `onError`, and the reporter runs in memory.
   * @default undefined (events are kept in memory only)
   */
  spool?: ReporterSpoolOptions;
  /**
   * How long the in-memory ledger (`ledger()` without a spool or a store of your own, or with a spool
   * that could not open) keeps an hour, counted back from the newest hour it holds: older hours are
   * forgotten, so its memory stays bounded (a cell per customer × event name × hour). A spool keeps its
   * own ledger (`spool.ledgerRetentionMs`), a store of your own its own.
   * @default 172800000 (48 h)
   */
  ledgerRetentionMs?: number;
  /**
   * A store of your own (`DurableEventStore`) instead of the memory store or `spool`; the reporter
   * recovers it at start and closes it in `close()`. Not with `spool`. What its methods throw never
   * reaches delivery: it goes to `onError` as `MeterStoreError` (`ERR_METER_STORE_FAILED`), thrown
   * only from `report()` (its `push()`), `ledger()` and an attempt to send (its `markAttempted()`: the
   * attempt is retried, as nothing was sent).
   * @default undefined (the in-memory store)
   */
  store?: DurableEventStore;
  /**
   * A request limiter of your own instead of the in-process token bucket, such as one shared by every
   * instance of the app (`RedisRateLimiter` of `@metered/redis`); `maxRequestsPerSecond` is then unused.
   * @default undefined (an in-process token bucket at `maxRequestsPerSecond`)
   */
  rateLimiter?: RequestLimiter;
  /**
   * Folds the events of the named sum meters per account × customer × meter × dimensions × window into
   * one event (values summed exactly), cutting Stripe requests by the events per fold. The open window
   * lives in memory until it ends (+ `graceMs`), `flush()` or `close()`: a crash loses it, spool or not.
   * @default undefined (every event is sent as it is)
   */
  aggregate?: AggregateOptions;
  /**
   * Names this reporter in the identifiers of its folded events (`aggregate`): stable for one
   * deployment slot (a pod name, a worker id). Two instances running at once must not share it.
   * @default a random id per reporter
   */
  instanceId?: string;
  /**
   * Serverless runtimes (Vercel, Cloudflare Workers, Netlify): called with a promise that settles
   * once the events reported in this turn are delivered (or failed, or dropped), so the runtime keeps
   * the function alive for it after the response, as `ctx.waitUntil(promise)` does. Never rejects.
   * @default undefined (delivery runs on the reporter's own timers)
   */
  waitUntil?: (promise: Promise<unknown>) => void;
  /**
   * OpenTelemetry metrics through `@opentelemetry/api` (an optional peer; without it, nothing is
   * recorded): events enqueued, delivered, failed, dropped by reason, retries, 429s, queue depth
   * and delivery latency, under `metered.*` names.
   * @default { enabled: true } on the global MeterProvider (a no-op until an SDK registers one)
   */
  metrics?: MetricsOptions;
}

/** Options of `aggregate`: which sum meters are folded, over which window. */
export interface AggregateOptions {
  /**
   * The window events are folded over (1 ms to 1 h); a fold's timestamp is inside it.
   * @default none: required
   */
  windowMs: number;
  /**
   * The meters to fold, each with its Stripe aggregation formula, which must be `'sum'` (a count or
   * last meter would bill a fold differently). Events of other meters are sent as they are.
   * @default none: required
   */
  meters: Readonly<Record<string, 'sum'>>;
  /**
   * How long after its end a window stays open for reports that arrive late (0 to `windowMs`).
   * @default 1000 (or windowMs, if shorter)
   */
  graceMs?: number;
}

/** A MeterProvider of `@opentelemetry/api` (the shape the reporter uses). */
export interface MetricsMeterProvider {
  getMeter(name: string, version?: string): unknown;
}

/** Options of `metrics`. */
export interface MetricsOptions {
  /**
   * Whether the reporter records metrics at all.
   * @default true
   */
  enabled?: boolean;
  /**
   * The MeterProvider to record on (an SDK's `MeterProvider`).
   * @default the global provider of `@opentelemetry/api` (`metrics.getMeterProvider()`)
   */
  meterProvider?: MetricsMeterProvider;
}

/**
 * Paces the reporter's requests to Stripe: `acquire()` is awaited before every request, and a 429
 * with `Retry-After` calls `pauseUntil()`, as Stripe's limits are account-wide. Implement it to share
 * one limit between processes; the default is an in-process token bucket (`Pacer`).
 */
export interface RequestLimiter {
  /** Resolves once a request may start, its token taken; rejects only when `signal` aborts. */
  acquire(signal?: AbortSignal): Promise<void>;
  /** Holds every request until `until` (epoch ms); an earlier time than one already set changes nothing. */
  pauseUntil(until: number): void;
}

/**
 * The reporter's on-disk spool: `SpoolOptions` less `onError`, as the spool's errors go to the
 * reporter's `onError` (with no events).
 */
export type ReporterSpoolOptions = Omit<SpoolOptions, 'onError'>;

/** Options of `close()`. */
export interface CloseOptions {
  /**
   * How long to keep delivering before the rest is handed to `onDrop` with reason `shutdown`.
   * @default 10000
   */
  timeoutMs?: number;
}

/** Options of `flush()`. */
export interface FlushOptions {
  /**
   * How long to wait for delivery. Events still pending then stay queued and keep being retried;
   * nothing is dropped.
   * @default 60000
   */
  timeoutMs?: number;
}

/** What `flush()` resolves with. */
export interface FlushResult {
  /** Whether every event reported before the call was delivered, failed or dropped within the timeout. */
  settled: boolean;
  /** How many of those events were still pending when the flush resolved (0 when settled). */
  pending: number;
}

/** What `close()` resolves with. */
export interface CloseResult {
  /** Events delivered during the close. */
  delivered: number;
  /** Events failed during the close (refused by Stripe or out of retries). */
  failed: number;
  /** Events handed to `onDrop` with reason `shutdown`. */
  dropped: number;
  /**
   * Events left undelivered in a durable store (the spool) for the next process to resend: neither
   * dropped nor handed to `onDrop`. Always 0 with the memory store.
   */
  kept: number;
}

/** Counters; at every moment `enqueued = delivered + failed + dropped.total + kept + pending`. */
export interface MeterStats {
  /** Events accepted by `report()`, and events a previous process left in the spool that this one took over. */
  enqueued: number;
  /** Events Stripe acknowledged (a duplicate counts: Stripe already has it). */
  delivered: number;
  /** Events refused by Stripe or out of retries, handed to `onError`. */
  failed: number;
  /** Events dropped undelivered, by reason. */
  dropped: { total: number; overflow: number; shutdown: number; expired: number };
  /** Events left in the durable store at `close()` for the next process (0 until then, and with the memory store). */
  kept: number;
  /** Events accepted and not yet settled: `queued + inFlight`. */
  pending: number;
  /** Events waiting for a request. */
  queued: number;
  /** Events in requests being sent or waiting for a retry. */
  inFlight: number;
  /** `report()` calls refused (invalid event, full queue with `overflow: 'reject'`, or after `close()`); nothing was enqueued. */
  rejected: number;
  /** HTTP requests sent to Stripe, every attempt included. */
  requests: number;
  /** Requests that succeeded carrying events. */
  batchesSent: number;
  /** Attempts that were retries. */
  retries: number;
  /** 429 answers seen. */
  rateLimited: number;
  /** Stream sessions created (the first one included). */
  sessionRefreshes: number;
}

/** A Stripe meter event adjustment, as `cancel()` resolves it. */
export interface MeterEventAdjustment {
  id: string;
  object: string;
  event_name: string;
  status: string;
  type: string;
  cancel: { identifier: string };
  created: string;
  livemode: boolean;
}
