// Public types of @metered/redis: the options of the shared queue, the shared limiter, the reporter over both and the worker.
import type { MeterReporterOptions, ReporterSpoolOptions } from '@metered/core';
import type { Redis } from 'ioredis';
import type { MeterRedisError } from './errors';

/** A Redis connection: an ioredis client you own (never closed by metered), or a URL metered connects to and closes. */
export type RedisConnection = Redis | string;

/** Options of `RedisEventStore`. */
export interface RedisEventStoreOptions {
  /**
   * The Redis server. A URL gets a client of its own with the settings this store needs (no offline
   * queue, no resend of unanswered commands, a command timeout); a client you pass should have them too.
   * @default 'redis://127.0.0.1:6379'
   */
  redis?: RedisConnection;
  /**
   * Prefix of every key (the stream is `<prefix>:events`); instances with the same prefix share one queue.
   * @default 'metered'
   */
  keyPrefix?: string;
  /**
   * Whether this instance reads events from the shared queue and hands them to its reporter. `false`
   * makes it enqueue-only: `report()` appends to Redis and workers (or other replicas) deliver.
   * @default true
   */
  deliver?: boolean;
  /**
   * This instance's consumer name in the group; unique per process (a restarted process takes a new one).
   * @default '<hostname>-<pid>-<random>'
   */
  consumer?: string;
  /**
   * Most events in the shared stream (waiting and handed out); past it `hasRoomFor()` is false and the
   * reporter's `overflow` policy applies.
   * @default 1000000
   */
  maxLength?: number;
  /**
   * Most events waiting in the local store while Redis is unreachable; past it `hasRoomFor()` is false.
   * @default 100000
   */
  maxLocalEvents?: number;
  /**
   * Where events wait while Redis is unreachable: a SQLite spool (`better-sqlite3`) that survives
   * the process, instead of memory. Its ledger is not used (the store keeps its own).
   * @default undefined (memory)
   */
  spool?: ReporterSpoolOptions;
  /**
   * Events read ahead from the stream into this process (what `take()` serves from).
   * @default 1000
   */
  prefetch?: number;
  /**
   * Milliseconds an entry handed to a consumer may go without a heartbeat before another instance
   * claims it (`XAUTOCLAIM`) and sends it again with the same identifier. Live consumers refresh
   * what they hold every third of this, so only a dead or stalled process loses its entries.
   * @default 30000
   */
  claimIdleMs?: number;
  /**
   * Milliseconds between reads of the stream while it has nothing new.
   * @default 50
   */
  pollIntervalMs?: number;
  /**
   * Milliseconds between attempts to reach Redis again after a failure.
   * @default 1000
   */
  retryIntervalMs?: number;
  /**
   * Milliseconds a command may take before it counts as failed (set on the client metered creates).
   * @default 5000
   */
  commandTimeoutMs?: number;
  /**
   * Called with every `MeterRedisError` (Redis unreachable, events that could not reach it at close,
   * entries that cannot be read). Never throws into the store.
   * @default undefined (errors are not reported)
   */
  onError?: (error: MeterRedisError) => void;
}

/** Options of `RedisRateLimiter`. */
export interface RedisRateLimiterOptions {
  /**
   * The Redis server (see `RedisEventStoreOptions.redis`).
   * @default 'redis://127.0.0.1:6379'
   */
  redis?: RedisConnection;
  /**
   * Prefix of the limiter's keys (`<prefix>:limiter`, `<prefix>:pause`); instances with the same prefix share one limit.
   * @default 'metered'
   */
  keyPrefix?: string;
  /** Requests per second for every instance together (the Stripe account's budget, with room left). Required. */
  requestsPerSecond: number;
  /**
   * Requests the shared bucket may grant at once after an idle moment.
   * @default a tenth of a second of tokens, at least 1
   */
  burst?: number;
  /**
   * Requests per second this instance allows itself while Redis is unreachable.
   * @default a quarter of `requestsPerSecond` (four instances together stay under the limit)
   */
  fallbackRequestsPerSecond?: number;
  /**
   * Milliseconds a limiter call to Redis may take before this instance uses its fallback for that request.
   * @default 500
   */
  timeoutMs?: number;
  /**
   * Called once per outage when the limiter falls back to its local limit. Never throws into the limiter.
   * @default undefined (not reported)
   */
  onError?: (error: MeterRedisError) => void;
}

/** Options of `RedisMeterReporter`: the reporter's own options, with the shared queue and the shared limit. */
export interface RedisMeterReporterOptions extends Omit<MeterReporterOptions, 'store' | 'rateLimiter'> {
  /**
   * The Redis server, shared by the queue and the limiter.
   * @default 'redis://127.0.0.1:6379'
   */
  redis?: RedisConnection;
  /**
   * Prefix of every key; replicas and workers with the same prefix share one queue and one limit.
   * @default 'metered'
   */
  keyPrefix?: string;
  /**
   * Whether this process delivers to Stripe. `false`: enqueue-only (API servers next to `metered-worker`).
   * @default true
   */
  deliver?: boolean;
  /**
   * Tuning of the shared queue (`RedisEventStoreOptions` less what is set above); `spool` here, or the
   * reporter's own `spool` option, is where events wait while Redis is unreachable.
   * @default {}
   */
  queue?: Omit<RedisEventStoreOptions, 'redis' | 'keyPrefix' | 'deliver' | 'onError'>;
  /**
   * Pace every instance together under `maxRequestsPerSecond` with `RedisRateLimiter`; `false` paces
   * this process alone (only when one process delivers).
   * @default true
   */
  sharedRateLimit?: boolean;
}

/** What `flush()` of a `RedisMeterReporter` waits for; as core's `FlushResult`. */
export interface RedisFlushResult {
  /** Whether every event reported before the call, and every older one in the shared queue, left it. */
  settled: boolean;
  /** Events of the shared queue (and the local store) still ahead of or at this instance's last one. */
  pending: number;
}

/** Options of `startWorker()`: a delivering `RedisMeterReporter` that reports nothing itself. */
export type WorkerOptions = Omit<RedisMeterReporterOptions, 'deliver'>;
