// The retry loop every request to Stripe runs under: time budget, counted retriable answers, Retry-After, and the credential breaker.
import type { ResolvedConfig } from '../config';
import { MAX_RETRY_ELAPSED_MS } from '../config';
import { StripeApiError } from '../errors';
import type { MeterUnauthorizedError } from '../errors';
import { sleep } from '../timers';
import type { MeterLogger } from '../types';
import type { CredentialBreaker } from './breaker';
import type { Counters } from './counters';
import type { Hooks } from './hooks';
import { backoffDelay, classifyFailure, retryAfterMs } from './retry';

/**
 * A request is never sent again this long after one that may have reached Stripe: past its 24 h
 * duplicate window a resend could bill the same events twice. (The spool's `resendWithinMs`, at most
 * 24 h, sets it for what a previous process sent, when longer.)
 */
export const RESEND_LIMIT_MS = MAX_RETRY_ELAPSED_MS - 3_600_000;

/**
 * A batch answered 429 is retried at least this long: a rate limit means Stripe is up and taking
 * events, so giving up would turn throttling into lost usage. As long as a resend is allowed, so
 * every retry is still deduplicated.
 */
const RATE_LIMITED_RETRY_MS = RESEND_LIMIT_MS;

/**
 * `stale`: not sent again because an attempt that may have reached Stripe is `RESEND_LIMIT_MS` old.
 * `here`: this run's first such attempt, which carried every event still in the batch; the `sentAt`
 * given (a previous process's) concerns only the recovered events that carry it.
 */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown; attempts: number; aborted: boolean; stale?: { here: number | undefined } };

/** Stripe's answers that say the request was not processed: rate limited, or another call for the same customer and meter in flight. */
function refusedUnprocessed(error: unknown): boolean {
  return error instanceof StripeApiError && (error.status === 429 || error.status === 409);
}

export class RetryLoop {
  constructor(
    private readonly config: ResolvedConfig,
    private readonly breaker: CredentialBreaker,
    private readonly counters: Counters,
    private readonly hooks: Hooks,
    private readonly logger: MeterLogger,
    private readonly signal: AbortSignal,
  ) {}

  /** `RESEND_LIMIT_MS`, or the spool's `resendWithinMs` when longer: what a previous process sent is resent as long as the spool allows. */
  get resendLimitMs(): number {
    return Math.max(RESEND_LIMIT_MS, this.config.spool?.resendWithinMs ?? 0);
  }

  /**
   * Runs `attempt` under the retry policy: transient failures are retried for as long as the time
   * budget allows (a count of attempts would turn a short outage into dead letters), only answers
   * retriable by Stripe's say-so count against `maxAttempts`, Retry-After is honoured up to its cap,
   * and a refused key holds the attempt at the credential breaker (`holdOnRefusedKey`) or ends it.
   * `sentAt`: when what it sends was first attempted by a previous process (the spool's rows), if it was.
   * Nothing is sent `resendLimitMs` after an attempt that may have reached Stripe, however long a hold lasted.
   */
  async run<T>(attempt: () => Promise<T>, holdOnRefusedKey = true, sentAt?: number): Promise<Outcome<T>> {
    const { maxAttempts, initialDelayMs, maxDelayMs, maxElapsedMs } = this.config.retry;
    const signal = this.signal;
    let started = Date.now();
    let backoffs = 0;
    let counted = 0;
    // The first attempt here that may have reached Stripe: one that did not fail at the key, nor was refused
    // unprocessed (429, 409). The earliest of it and a previous process's `sentAt` sets the limit.
    let firstHere: number | undefined;
    let lastError: unknown;
    for (let attempts = 1; ; attempts += 1) {
      let probe = false;
      let attemptedAt = 0;
      try {
        if (this.breaker.isOpen) {
          probe = await this.breaker.turn(signal);
          // Held while the key was refused, with nothing of it sent that Stripe may have taken (every attempt so
          // far refused, none failed in transit): its time budget starts when it can be sent, not before the hold.
          if (backoffs === 0) started = Date.now();
        }
        attemptedAt = Date.now();
        const landed = Math.min(sentAt ?? Infinity, firstHere ?? Infinity);
        if (attemptedAt - landed >= this.resendLimitMs) {
          // Not sent, so a probe granted here says nothing of the key: the next waiter probes at once.
          if (probe) this.breaker.probeFailed();
          return { ok: false, error: lastError, attempts: attempts - 1, aborted: false, stale: { here: firstHere } };
        }
        const value = await attempt();
        this.breaker.succeeded();
        return { ok: true, value };
      } catch (error) {
        if (signal.aborted) return { ok: false, error, attempts, aborted: true };
        lastError = error;
        const kind = classifyFailure(error);
        if (kind !== 'unauthorized' && attemptedAt !== 0 && !refusedUnprocessed(error)) firstHere ??= attemptedAt;
        if (kind === 'unauthorized') {
          // onError hears of it once per opening, with no events: they stay queued for when the key works.
          if (this.breaker.refused(probe)) this.hooks.error(error as MeterUnauthorizedError);
          if (!holdOnRefusedKey) return { ok: false, error, attempts, aborted: false };
          this.counters.retries += 1;
          continue;
        }
        if (probe) this.breaker.probeFailed();
        if (kind === 'final') return { ok: false, error, attempts, aborted: false };
        if (kind === 'retriable' && (counted += 1) >= maxAttempts) return { ok: false, error, attempts, aborted: false };
        backoffs += 1;
        let wait = backoffDelay(backoffs, initialDelayMs, maxDelayMs);
        const rateLimited = error instanceof StripeApiError && error.status === 429;
        const asked = error instanceof StripeApiError ? retryAfterMs(error.retryAfterSeconds) : undefined;
        if (asked !== undefined) wait = Math.max(wait, asked);
        const budget = rateLimited ? Math.max(maxElapsedMs, RATE_LIMITED_RETRY_MS) : maxElapsedMs;
        if (Date.now() - started + wait >= budget) return { ok: false, error, attempts, aborted: false };
        this.counters.retries += 1;
        this.logger.debug?.({ code: 'METER_RETRY', attempt: attempts, waitMs: wait, status: error instanceof StripeApiError ? error.status : undefined }, 'retrying a request to Stripe');
        try {
          await sleep(wait, signal);
        } catch {
          return { ok: false, error, attempts, aborted: true };
        }
      }
    }
  }
}
