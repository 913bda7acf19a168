// Paces requests under Stripe's rate limit (a token bucket) and holds all sending during a 429 pause.
import { setTimeout as delay } from 'node:timers/promises';
import type { RequestLimiter } from '../types';

const TOKEN_EPSILON = 1e-9;

/**
 * A token bucket of `rate` requests per second. The burst is about 10 ms of tokens (at least one), so
 * no one-second window ever sees more than `rate` plus that sliver: staying under Stripe's limiter
 * instead of bouncing off it.
 */
export class Pacer implements RequestLimiter {
  private tokens: number;
  private last: number;
  private readonly burst: number;
  private pausedUntil = 0;

  constructor(
    private readonly rate: number,
    private readonly now: () => number = Date.now,
  ) {
    this.burst = Math.max(1, Math.floor(rate / 100));
    this.tokens = this.burst;
    this.last = now();
  }

  /** Stops every request until `until` (epoch ms): Stripe's limits are account-wide. */
  pauseUntil(until: number): void {
    if (until > this.pausedUntil) this.pausedUntil = until;
  }

  /** Milliseconds until a request may start, taking its token when it may start now. */
  tryTake(): number {
    const now = this.now();
    if (now < this.pausedUntil) return this.pausedUntil - now;
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    // The epsilon absorbs float drift: ten additions of 0.1 must make a whole token, not 0.9999999.
    if (this.tokens >= 1 - TOKEN_EPSILON) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.rate));
  }

  /** Resolves once a request may start; rejects when `signal` aborts. */
  async acquire(signal?: AbortSignal): Promise<void> {
    for (let wait = this.tryTake(); wait > 0; wait = this.tryTake()) {
      await delay(wait, undefined, { ref: false, signal });
    }
  }
}
