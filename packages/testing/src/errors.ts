// The fake's own error class, and builders of the error bodies Stripe answers with (v1 and v2 shapes).
import type { FakeStripeErrorCode } from './types';

/** Thrown by the fake's JavaScript API: bad options, unknown meters, lossy totals. */
export class FakeStripeError extends Error {
  override readonly name: string = 'FakeStripeError';
  readonly code: FakeStripeErrorCode;

  constructor(code: FakeStripeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Thrown by `startFakeStripe` for an invalid option; the message names the option and what it accepts. */
export class FakeStripeConfigError extends FakeStripeError {
  override readonly name: string = 'FakeStripeConfigError';

  constructor(message: string) {
    super('ERR_FAKE_STRIPE_CONFIG', message);
  }
}

/** The `error` member of a Stripe error body. */
export interface StripeErrorDetail {
  type: string;
  code?: string;
  message: string;
  param?: string;
  doc_url?: string;
}

/** A Stripe error answer: status, body, and extra headers. */
export interface ErrorAnswer {
  status: number;
  body: { error: StripeErrorDetail };
  headers?: Record<string, string>;
}

const DOC_BASE = 'https://docs.stripe.com/error-codes';

/** Builds a Stripe error answer; v2 errors always carry a `code` (the spec requires one). */
export function stripeError(status: number, detail: StripeErrorDetail, headers?: Record<string, string>): ErrorAnswer {
  return headers === undefined ? { status, body: { error: detail } } : { status, body: { error: detail }, headers };
}

/** A 400 in the v2 shape with a specific code. */
export function invalidRequest(code: string, message: string): ErrorAnswer {
  return stripeError(400, { type: 'invalid_request_error', code, message });
}

/** A 400 for a request body that does not match the endpoint's schema. */
export function invalidFields(message: string): ErrorAnswer {
  return invalidRequest('invalid_fields', message);
}

/** 404 for a route this host does not serve, in the shape of the API generation the path names. */
export function unrecognizedUrl(method: string, path: string): ErrorAnswer {
  const message = `Unrecognized request URL (${method}: ${path}). Please see https://docs.stripe.com or we can help at https://support.stripe.com/.`;
  return path.startsWith('/v2/')
    ? stripeError(404, { type: 'invalid_request_error', code: 'not_found', message })
    : stripeError(404, { type: 'invalid_request_error', message });
}

/** 401 for a missing or wrong credential; never echoes the credential. */
export function unauthorized(message: string): ErrorAnswer {
  return stripeError(401, { type: 'invalid_request_error', code: 'unauthorized', message });
}

/** 401 for an expired meter event session token, exactly as the spec's `billing_meter_event_session_expired`. */
export function sessionExpired(): ErrorAnswer {
  return stripeError(401, {
    type: 'temporary_session_expired',
    code: 'billing_meter_event_session_expired',
    message: 'The meter event session has expired. Create a new session with POST /v2/billing/meter_event_session.',
    doc_url: `${DOC_BASE}#billing-meter-event-session-expired`,
  });
}

/** 429 as Stripe's rate limiter answers it (stripe-node maps it to `StripeRateLimitError`). */
export function rateLimited(retryAfterSeconds: number | null): ErrorAnswer {
  return stripeError(
    429,
    {
      type: 'invalid_request_error',
      code: 'rate_limit',
      message: 'Request rate limit exceeded. Learn more about rate limits here https://docs.stripe.com/rate-limits.',
      doc_url: `${DOC_BASE}/rate-limit`,
    },
    retryAfterSeconds === null ? undefined : { 'retry-after': String(retryAfterSeconds) },
  );
}

const STATUS_CODES: Record<number, string> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'lock_timeout',
  429: 'rate_limit',
  500: 'internal_server_error',
  502: 'bad_gateway',
  503: 'service_unavailable',
  504: 'gateway_timeout',
};

/** An injected error for `status`, with defaults Stripe would plausibly send for it. */
export function injectedError(
  status: number,
  overrides: { type?: string; code?: string; message?: string; retryAfter?: number; defaultCode?: string },
): ErrorAnswer {
  const type = overrides.type ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
  const code = overrides.code ?? overrides.defaultCode ?? STATUS_CODES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request');
  const message = overrides.message ?? `Injected failure (HTTP ${status}) from the fake Stripe.`;
  const headers = overrides.retryAfter === undefined ? undefined : { 'retry-after': String(overrides.retryAfter) };
  return stripeError(status, { type, code, message }, headers);
}
