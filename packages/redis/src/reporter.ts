// RedisMeterReporter: a MeterReporter over the shared Redis queue and the account-wide limiter, with flush and close in the queue's terms.
import { MeterReporter } from '@metered/core';
import type { CloseOptions, CloseResult, FlushOptions, MeterReporterOptions } from '@metered/core';
import { RedisEventStore } from './event-store';
import type { MeterRedisError } from './errors';
import { RedisRateLimiter } from './rate-limiter';
import type { RedisFlushResult, RedisMeterReporterOptions } from './types';

const DEFAULT_FLUSH_TIMEOUT_MS = 60_000;
// core's own defaults for maxRequestsPerSecond (config.ts), needed here first as the shared bucket is built before the reporter.
const TEST_MODE_RPS = 20;
const LIVE_STREAM_RPS = 10_000;
const LIVE_DIRECT_RPS = 1000;

function defaultRate(options: MeterReporterOptions): number {
  if (options.maxRequestsPerSecond !== undefined) return options.maxRequestsPerSecond;
  if (typeof options.apiKey === 'string' && options.apiKey.includes('_live_')) return options.mode === 'direct' ? LIVE_DIRECT_RPS : LIVE_STREAM_RPS;
  return TEST_MODE_RPS;
}

/**
 * A `MeterReporter` for many instances of one app: `report()` appends to a Redis Stream shared by
 * every instance (never waiting for Redis), whichever instance (or `metered-worker`) is free
 * delivers, and all of them together stay under `maxRequestsPerSecond`. Redis errors reach `onError`
 * as `MeterRedisError`.
 *
 * @example
 * const reporter = new RedisMeterReporter({ apiKey: process.env.STRIPE_SECRET_KEY!, redis: process.env.REDIS_URL });
 * reporter.report({ eventName: 'api_requests', customerId: 'cus_123' });
 * await reporter.close();
 */
export class RedisMeterReporter extends MeterReporter {
  /** The shared queue this reporter's store is. */
  readonly queue: RedisEventStore;
  /** The shared limiter, unless `sharedRateLimit: false`. */
  readonly limiter: RedisRateLimiter | undefined;
  #nudging = false;
  #closing = false;

  constructor(options: RedisMeterReporterOptions) {
    const { redis, keyPrefix, deliver, queue: queueOptions, sharedRateLimit, spool, ...reporterOptions } = options;
    // Errors of the queue and the limiter go to this reporter's onError, which exists only once super() returned.
    const late: { reporter?: RedisMeterReporter } = {};
    const early: MeterRedisError[] = [];
    const onError = (error: MeterRedisError): void => {
      if (late.reporter) late.reporter.handleError(error, error.events);
      else early.push(error);
    };
    const queue = new RedisEventStore({ spool, ...queueOptions, redis, keyPrefix, deliver, onError });
    let limiter: RedisRateLimiter | undefined;
    try {
      limiter = sharedRateLimit === false ? undefined : new RedisRateLimiter({ redis, keyPrefix, requestsPerSecond: defaultRate(reporterOptions), onError });
      super({ ...reporterOptions, store: queue, rateLimiter: limiter });
    } catch (error) {
      queue.close();
      void limiter?.close();
      throw error;
    }
    late.reporter = this;
    this.queue = queue;
    this.limiter = limiter;
    for (const error of early) this.handleError(error, error.events);
    // The reporter starts a request when its store reaches a batch on report(); events read from
    // Redis arrive on their own, so a zero-length flush tells it to take them now, not at the next interval.
    queue.onAvailable(() => this.nudge());
  }

  /**
   * Resolves once every event reported here before the call has left the shared queue (delivered,
   * failed or dropped by whichever instance took it), with every older one, or after `timeoutMs`
   * (default 60 s). An enqueue-only reporter waits for the workers.
   */
  override async flush(options: FlushOptions = {}): Promise<RedisFlushResult> {
    const own = super.flush(options);
    const timeoutMs = typeof options?.timeoutMs === 'number' ? options.timeoutMs : DEFAULT_FLUSH_TIMEOUT_MS;
    // Ref'd sleeps: an awaited flush keeps the process alive, as core's does.
    const shared = this.queue.waitUntilSettled(timeoutMs, (ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    const [mine, all] = await Promise.all([own, shared]);
    return { settled: mine.settled && all.settled, pending: Math.max(mine.pending, all.pending) };
  }

  /**
   * Stops reading the queue, delivers what this instance holds for up to `timeoutMs`, hands the rest
   * back to the group (another instance sends it at once, same identifiers), moves what waits
   * locally to Redis, and closes the connections it opened. Idempotent.
   */
  override async close(options: CloseOptions = {}): Promise<CloseResult> {
    this.#closing = true;
    this.queue.stopReading();
    const result = await super.close(options);
    await this.queue.closed();
    await this.limiter?.close();
    return result;
  }

  private nudge(): void {
    if (this.#nudging || this.#closing) return;
    this.#nudging = true;
    setImmediate(() => {
      this.#nudging = false;
      if (!this.#closing) void super.flush({ timeoutMs: 0 });
    });
  }
}
