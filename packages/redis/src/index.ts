// @metered/redis public API: an explicit list.
export { RedisEventStore, DEFAULT_MAX_LENGTH, DEFAULT_MAX_LOCAL_EVENTS, DEFAULT_PREFETCH, DEFAULT_CLAIM_IDLE_MS, DEFAULT_POLL_INTERVAL_MS, DEFAULT_RETRY_INTERVAL_MS, DEFAULT_COMMAND_TIMEOUT_MS } from './event-store';
export { RedisRateLimiter, DEFAULT_LIMITER_TIMEOUT_MS, DEFAULT_FALLBACK_FRACTION } from './rate-limiter';
export { RedisMeterReporter } from './reporter';
export { startWorker, workerOptionsFromEnv, WORKER_ENV } from './worker';
export { MeterRedisError } from './errors';
export type { MeterRedisErrorCode } from './errors';
export { DEFAULT_REDIS_URL, DEFAULT_KEY_PREFIX } from './keys';
export type {
  RedisConnection,
  RedisEventStoreOptions,
  RedisRateLimiterOptions,
  RedisMeterReporterOptions,
  RedisFlushResult,
  WorkerOptions,
} from './types';
