// Account-wide token bucket on the fake's clock, so tests can exhaust and refill it without waiting.
import type { ResolvedRateLimit } from './config';
import type { FakeEndpoint } from './types';

export class RateLimiter {
  private tokens: number;
  private updatedAt: number | null = null;

  constructor(
    private readonly limit: ResolvedRateLimit,
    private readonly now: () => number,
  ) {
    this.tokens = limit.burst;
  }

  /** Spends a token; returns null when allowed, else the seconds to wait (at least 1, as Retry-After is whole seconds). */
  take(endpoint: FakeEndpoint): number | null {
    if (!this.limit.endpoints.has(endpoint)) return null;
    const now = this.now();
    if (this.updatedAt !== null && now > this.updatedAt) {
      this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.updatedAt) / 1000) * this.limit.requestsPerSecond);
    }
    // A clock moved backwards must not mint tokens when it moves forward again.
    this.updatedAt = this.updatedAt === null ? now : Math.max(this.updatedAt, now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return null;
    }
    return Math.max(1, Math.ceil((1 - this.tokens) / this.limit.requestsPerSecond));
  }

  get retryAfter(): boolean {
    return this.limit.retryAfter;
  }

  reset(): void {
    this.tokens = this.limit.burst;
    this.updatedAt = null;
  }
}
