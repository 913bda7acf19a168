// RedisRateLimiter: one token bucket in Redis (an atomic Lua script) for every instance, and one shared 429 pause.
import { MeterConfigError, Pacer, optionalFunction, optionalMilliseconds } from '@metered/core';
import type { RequestLimiter } from '@metered/core';
import type { Redis } from 'ioredis';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { MeterRedisError } from './errors';
import { closeClient, connect, keysFor } from './keys';
import type { RedisRateLimiterOptions } from './types';

export const DEFAULT_LIMITER_TIMEOUT_MS = 500;
/**
 * Tokens taken in one trip are this instance's for this long, then dropped (and given back at the next
 * trip): at most this much of the account's rate is ever outstanding in allowances, so over any span
 * of t seconds every instance together starts at most rate·(t + 0.02) + burst requests.
 */
export const ALLOWANCE_MS = 20;
/** While Redis is away each instance allows itself this share of the rate: four instances together stay under it. */
export const DEFAULT_FALLBACK_FRACTION = 0.25;

// Redis's own clock (TIME) is the only clock, so instances with skewed clocks still share one bucket.
// ARGV: rate, burst, tokens wanted, unused tokens of an expired allowance given back (never past burst).
// Returns { tokens taken (up to the wanted number, at least 1 when any), milliseconds to wait when none
// (a pause, or until the next token) }.
const TAKE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local back = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then tokens = burst; at = now end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
  at = now
end
if back > 0 then tokens = math.min(burst, tokens + back) end
local taken = 0
local wait = 0
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then
  wait = paused - now
elseif tokens >= 1 - 1e-9 then
  taken = math.max(1, math.min(want, math.floor(tokens + 1e-9)))
  tokens = tokens - taken
else
  wait = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], 60000)
return { taken, wait }
`;

// Extends the shared pause to now + ARGV[1] ms (Redis's clock), never shortens it.
const PAUSE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilMs > current then redis.call('SET', KEYS[1], tostring(untilMs), 'PX', ARGV[1]) end
return 0
`;

type ScriptClient = Redis & {
  meteredTake(bucket: string, pause: string, rate: number, burst: number, want: number, back: number): Promise<[number, number]>;
  meteredPause(pause: string, ms: number): Promise<number>;
};

function positiveNumber(option: string, value: unknown, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new MeterConfigError(option, `must be a number above 0, got ${typeof value === 'number' ? value : typeof value}`);
  return value;
}

/**
 * An account-wide request limiter: every instance with the same `keyPrefix` takes its tokens from one
 * bucket in Redis, so together they stay under `requestsPerSecond`, and a 429's `Retry-After` seen
 * by one pauses them all. A busy instance takes several tokens per trip to Redis (a local allowance:
 * one per acquire() waiting, or twice what it used of the last one up to `ALLOWANCE_MS` of the rate,
 * whichever is more) and uses them within `ALLOWANCE_MS`, or gives them back. With Redis unreachable (or slower than `timeoutMs`), each
 * instance paces itself at `fallbackRequestsPerSecond` and reports it once through `onError`.
 *
 * @example
 * const rateLimiter = new RedisRateLimiter({ redis: process.env.REDIS_URL, requestsPerSecond: 20 });
 * const reporter = new MeterReporter({ apiKey: process.env.STRIPE_SECRET_KEY!, rateLimiter });
 */
export class RedisRateLimiter implements RequestLimiter {
  readonly requestsPerSecond: number;
  readonly burst: number;
  readonly fallbackRequestsPerSecond: number;
  private readonly redis: ScriptClient;
  private readonly ownsClient: boolean;
  private readonly keys: ReturnType<typeof keysFor>;
  private readonly fallback: Pacer;
  private readonly timeoutMs: number;
  private readonly onError: ((error: MeterRedisError) => void) | undefined;
  private fallingBack = false;
  private closed = false;
  // Most tokens one trip asks for: ALLOWANCE_MS of the rate (1 at sandbox rates: a trip per request, as before).
  private readonly maxAllowance: number;
  // Tokens of this instance's allowance, until `allowanceEnds` (performance.now()); how many the last one held.
  private allowance = 0;
  private allowanceEnds = 0;
  private lastAllowance = 0;
  // Unused tokens of an expired allowance, given back at the next trip.
  private giveBack = 0;
  // acquire() calls waiting for the trip in flight (one trip at a time, for all of them).
  private waiting = 0;
  private trip: Promise<number | undefined> | undefined;

  constructor(options: RedisRateLimiterOptions) {
    if (typeof options !== 'object' || options === null) throw new MeterConfigError('requestsPerSecond', 'is required (the account-wide rate)');
    this.requestsPerSecond = positiveNumber('requestsPerSecond', options.requestsPerSecond);
    this.burst = positiveNumber('burst', options.burst, Math.max(1, Math.ceil(this.requestsPerSecond / 10)));
    this.fallbackRequestsPerSecond = positiveNumber('fallbackRequestsPerSecond', options.fallbackRequestsPerSecond, this.requestsPerSecond * DEFAULT_FALLBACK_FRACTION);
    this.fallback = new Pacer(this.fallbackRequestsPerSecond);
    this.maxAllowance = Math.max(1, Math.floor((this.requestsPerSecond * ALLOWANCE_MS) / 1000));
    this.timeoutMs = optionalMilliseconds('timeoutMs', options.timeoutMs, DEFAULT_LIMITER_TIMEOUT_MS);
    this.onError = optionalFunction<RedisRateLimiterOptions['onError']>('onError', options.onError, undefined);
    this.keys = keysFor(options.keyPrefix);
    const { client, owned } = connect(options.redis, this.timeoutMs);
    this.ownsClient = owned;
    if (owned) client.on('error', () => undefined);
    if (typeof (client as unknown as Partial<ScriptClient>).meteredTake !== 'function') {
      client.defineCommand('meteredTake', { numberOfKeys: 2, lua: TAKE_SCRIPT });
      client.defineCommand('meteredPause', { numberOfKeys: 1, lua: PAUSE_SCRIPT });
    }
    this.redis = client as unknown as ScriptClient;
  }

  /** Whether this instance currently paces itself alone (Redis unreachable). */
  get local(): boolean {
    return this.fallingBack;
  }

  async acquire(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.allowance > 0) {
        if (performance.now() < this.allowanceEnds) {
          this.allowance -= 1;
          return;
        }
        this.expireAllowance();
      }
      this.waiting += 1;
      let wait: number | undefined;
      try {
        wait = await (this.trip ??= this.takeShared().finally(() => {
          this.trip = undefined;
        }));
      } finally {
        this.waiting -= 1;
      }
      if (wait === undefined) return this.fallback.acquire(signal);
      if (wait === 0) {
        // Tokens arrived for this call and the others that waited on the same trip: one each while they last, whatever the clock says
        // (an aborted caller takes none: they stay for the others, or go back with the allowance).
        signal?.throwIfAborted();
        if (this.allowance > 0) {
          this.allowance -= 1;
          return;
        }
        continue;
      }
      await delay(wait, undefined, { ref: false, signal });
    }
  }

  pauseUntil(until: number): void {
    // The allowance goes with the pause: no request of this instance starts before `until`.
    this.expireAllowance();
    this.fallback.pauseUntil(until);
    const ms = Math.ceil(until - Date.now());
    if (ms <= 0 || this.redis.status !== 'ready') return;
    this.redis.meteredPause(this.keys.pause, ms).catch((error: unknown) => this.fellBack(error));
  }

  /** Closes the connection it opened (a client you passed stays open). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) await closeClient(this.redis);
  }

  /** Drops what is left of the allowance; the next trip gives it back to the shared bucket. */
  private expireAllowance(): void {
    this.giveBack += this.allowance;
    this.allowance = 0;
  }

  /**
   * One trip to the shared bucket: tokens for every call waiting on it and, while the last allowance
   * ran out before it expired, twice what it held (up to maxAllowance); 0 when tokens were taken
   * (now in `allowance`), the milliseconds to wait when none, undefined when Redis cannot answer in
   * time (then the local bucket decides).
   */
  private async takeShared(): Promise<number | undefined> {
    if (this.closed || this.redis.status !== 'ready') {
      this.fellBack(new Error(`the connection is ${this.closed ? 'closed' : this.redis.status}`));
      return undefined;
    }
    // How much of the last allowance was used tells the demand: all of it, ask for twice as much; part, for what was used (twice).
    const used = this.lastAllowance - this.giveBack;
    const want = Math.max(this.waiting, Math.min(this.maxAllowance, Math.max(1, 2 * used)));
    const back = this.giveBack;
    this.giveBack = 0;
    let timer: NodeJS.Timeout | undefined;
    try {
      const take = this.redis.meteredTake(this.keys.limiter, this.keys.pause, this.requestsPerSecond, this.burst, want, back);
      // A client of ours has commandTimeout set to timeoutMs already: a timer per request would only add work.
      const wait = this.ownsClient
        ? await take
        : await Promise.race([
            take,
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
            }),
          ]);
      if (this.fallingBack) this.fallingBack = false;
      const [taken, ms] = wait;
      if (taken > 0) {
        this.allowance = taken;
        this.lastAllowance = taken;
        this.allowanceEnds = performance.now() + ALLOWANCE_MS;
        return 0;
      }
      return Number(ms);
    } catch (error) {
      this.fellBack(error);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  private fellBack(cause: unknown): void {
    if (this.fallingBack) return;
    this.fallingBack = true;
    const reason = cause instanceof Error ? cause.message : String(cause);
    try {
      this.onError?.(
        new MeterRedisError(
          'ERR_METER_REDIS_LIMITER_FALLBACK',
          `The shared rate limit in Redis cannot be used (${reason}); this instance paces itself at ${this.fallbackRequestsPerSecond} requests/s until Redis answers again`,
          [],
          cause,
        ),
      );
    } catch {
      // As in the store: the hook's failure changes nothing here.
    }
  }
}
