// Which failures are worth another attempt, and how long to wait before it.
import { StripeApiError } from './errors';

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

/**
 * Whether another attempt may succeed. Stripe's `Stripe-Should-Retry` wins when sent; otherwise
 * 409 (a concurrent call for the same customer and meter), 429, 5xx, timeouts and connection
 * failures are transient and every other answer is final.
 */
export function isRetriable(error: unknown): boolean {
  if (error instanceof StripeApiError) {
    if (error.shouldRetry !== undefined) return error.shouldRetry;
    // An expiry that outlived the transport's own renewals (clock skew) is still temporary.
    if (isSessionExpired(error)) return true;
    return error.status === 409 || error.status === 429 || error.status === 408 || error.status >= 500;
  }
  const code = errorCode(error);
  return code !== undefined && RETRIABLE_NETWORK_CODES.has(code);
}

/** Exponential backoff with full jitter: a delay drawn from [0, min(maxDelay, initial·2^(attempt-1))]. */
export function backoffDelay(attempt: number, initialDelayMs: number, maxDelayMs: number, random: () => number = Math.random): number {
  const bound = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * bound);
}
