// Which failures are worth another attempt, and how long to wait before it.
import { MeterStoreError, MeterUnauthorizedError, StripeApiError } from '../errors';

/** Network failures after which the same request may be sent again. */
const RETRIABLE_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  if (typeof code === 'string' && RETRIABLE_NETWORK_CODES.has(code)) return code;
  return cause === undefined || cause === error ? (typeof code === 'string' ? code : undefined) : errorCode(cause);
}

/** Whether Stripe refused a stream request because its session token expired. */
export function isSessionExpired(error: unknown): boolean {
  return (
    error instanceof StripeApiError &&
    error.status === 401 &&
    (error.stripeCode === 'billing_meter_event_session_expired' || error.stripeType === 'temporary_session_expired')
  );
}

/** Whether another attempt may succeed (a refused key counts as final here: the breaker decides). */
export function isRetriable(error: unknown): boolean {
  const kind = classifyFailure(error);
  return kind === 'transient' || kind === 'retriable';
}

/**
 * How a failure is retried. `transient`: Stripe or the network is briefly unavailable (network
 * errors, 5xx, 408, 409, 429, an expired session); retried for as long as `retry.maxElapsedMs`
 * allows, whatever the number of attempts. `retriable`: an answer that is final by its status but
 * that Stripe marked `Stripe-Should-Retry: true`; bounded by `retry.maxAttempts` as well.
 * A store that could not record an attempt is `transient` too (nothing was sent).
 * `unauthorized`: the secret key was refused; the credential breaker holds it. `final`: never retried.
 */
export type FailureKind = 'transient' | 'retriable' | 'unauthorized' | 'final';

export function classifyFailure(error: unknown): FailureKind {
  if (error instanceof MeterUnauthorizedError) return 'unauthorized';
  // A store of the user's own could not record the attempt (markAttempted), so it was not sent.
  if (error instanceof MeterStoreError) return 'transient';
  if (error instanceof StripeApiError) {
    if (error.shouldRetry === false) return 'final';
    if (isSessionExpired(error) || error.status === 409 || error.status === 429 || error.status === 408 || error.status >= 500) return 'transient';
    return error.shouldRetry === true ? 'retriable' : 'final';
  }
  const code = errorCode(error);
  return code !== undefined && RETRIABLE_NETWORK_CODES.has(code) ? 'transient' : 'final';
}

/** Whether Stripe refused the secret key itself (not an expired stream session). */
export function isKeyRefused(error: unknown): error is StripeApiError {
  return error instanceof StripeApiError && (error.status === 401 || error.status === 403) && !isSessionExpired(error);
}

/**
 * The longest `Retry-After` honoured. Stripe's limiters work in one-second windows and ask for
 * seconds; a longer value comes from a proxy or a broken server, and obeying 3600 would stop all
 * sending for an hour. A minute still backs off hard from a real limiter.
 */
export const MAX_RETRY_AFTER_MS = 60_000;

/** The wait a `Retry-After` asks for, in ms, capped at `MAX_RETRY_AFTER_MS`; undefined without one. */
export function retryAfterMs(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : Math.min(MAX_RETRY_AFTER_MS, Math.max(0, seconds * 1000));
}

/** Exponential backoff with full jitter: a delay drawn from [0, min(maxDelay, initial·2^(attempt-1))]. */
export function backoffDelay(attempt: number, initialDelayMs: number, maxDelayMs: number, random: () => number = Math.random): number {
  const bound = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * bound);
}
