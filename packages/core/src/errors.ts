// The one error family of metered: a literal `code` per failure, documented in docs/errors.md.
import { redactSecrets } from './redact';

/** Every code a metered error can carry. */
export type MeterErrorCode =
  | 'ERR_METER_INVALID_OPTION'
  | 'ERR_METER_INVALID_EVENT'
  | 'ERR_METER_INVALID_EVENT_NAME'
  | 'ERR_METER_INVALID_CUSTOMER'
  | 'ERR_METER_INVALID_VALUE'
  | 'ERR_METER_INVALID_TIMESTAMP'
  | 'ERR_METER_INVALID_IDENTIFIER'
  | 'ERR_METER_INVALID_DIMENSIONS'
  | 'ERR_METER_INVALID_ACCOUNT'
  | 'ERR_METER_QUEUE_FULL'
  | 'ERR_METER_CLOSED'
  | 'ERR_METER_STRIPE_API'
  | 'ERR_METER_DELIVERY_FAILED'
  | 'ERR_METER_UNAUTHORIZED'
  | 'ERR_METER_ADAPTER'
  | 'ERR_METER_SPOOL_UNAVAILABLE'
  | 'ERR_METER_SPOOL_LOCKED'
  | 'ERR_METER_SPOOL_CORRUPT'
  | 'ERR_METER_SPOOL_VERSION'
  | 'ERR_METER_SPOOL_READONLY'
  | 'ERR_METER_SPOOL_FULL'
  | 'ERR_METER_SPOOL_IO'
  | 'ERR_METER_STORE_FAILED'
  | 'ERR_METER_DELIVERY_UNCERTAIN'
  | 'ERR_METER_DELIVERY_WORKER'
  | 'ERR_METER_EVENT_REJECTED'
  | 'ERR_METER_WEBHOOK_SIGNATURE'
  | 'ERR_METER_WEBHOOK_EVENT'
  | 'ERR_METER_VERIFY_FAILED'
  // @metered/redis: the shared queue and the account-wide limiter.
  | 'ERR_METER_REDIS_UNAVAILABLE'
  | 'ERR_METER_REDIS_LIMITER_FALLBACK'
  | 'ERR_METER_REDIS_UNFLUSHED'
  | 'ERR_METER_REDIS_BAD_ENTRY';

/** Base class of every error metered throws or reports. */
export class MeterError extends Error {
  override readonly name: string = 'MeterError';
  constructor(
    readonly code: MeterErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(redactSecrets(message), options);
  }
}

/** A constructor option is missing or out of range; thrown by `new MeterReporter()`. */
export class MeterConfigError extends MeterError {
  override readonly name = 'MeterConfigError';
  constructor(
    /** The option, as a dotted path (`retry.maxAttempts`). */
    readonly option: string,
    message: string,
  ) {
    super('ERR_METER_INVALID_OPTION', `Invalid option "${option}": ${message}`);
  }
}

/** An event given to `report()` breaks one of Stripe's rules; nothing was enqueued. */
export class MeterValidationError extends MeterError {
  override readonly name = 'MeterValidationError';
  constructor(
    code: Extract<MeterErrorCode, `ERR_METER_INVALID_${string}`>,
    /** The event field at fault (`value`, `timestamp`, …). */
    readonly field: string,
    /** The rule it breaks, in words. */
    readonly rule: string,
  ) {
    super(code, `Invalid meter event field "${field}": ${rule}`);
  }
}

/** `report()` with `overflow: 'reject'` and a full queue. */
export class MeterQueueFullError extends MeterError {
  override readonly name = 'MeterQueueFullError';
  constructor(readonly maxQueueSize: number) {
    super('ERR_METER_QUEUE_FULL', `The meter queue is full (maxQueueSize ${maxQueueSize}); the event was not accepted`);
  }
}

/** `report()` or `cancel()` after `close()`. */
export class MeterClosedError extends MeterError {
  override readonly name = 'MeterClosedError';
  constructor() {
    super('ERR_METER_CLOSED', 'The meter reporter is closed; the event was not accepted');
  }
}

/** Stripe answered with an error (its status, `type` and `code` are kept). */
export class StripeApiError extends MeterError {
  override readonly name = 'StripeApiError';
  constructor(
    readonly status: number,
    /** Stripe's error `type` (`invalid_request_error`, `temporary_session_expired`, …). */
    readonly stripeType: string | undefined,
    /** Stripe's error `code` (`archived_meter`, `duplicate_meter_event`, …). */
    readonly stripeCode: string | undefined,
    stripeMessage: string | undefined,
    /** Seconds from `Retry-After`, when Stripe sent one. */
    readonly retryAfterSeconds: number | undefined,
    /** Stripe's `Stripe-Should-Retry` answer, when sent. */
    readonly shouldRetry: boolean | undefined,
    readonly requestId: string | undefined,
  ) {
    super(
      'ERR_METER_STRIPE_API',
      `Stripe answered ${status}${stripeCode ? ` ${stripeCode}` : ''}${stripeMessage ? `: ${stripeMessage}` : ''}`,
    );
  }
}

/** Events that could not be delivered: refused by Stripe, or out of retries (`cause` says why). */
export class MeterDeliveryError extends MeterError {
  override readonly name = 'MeterDeliveryError';
  constructor(
    message: string,
    /** Attempts made. */
    readonly attempts: number,
    /** Whether a retry could never succeed (Stripe refused the events). */
    readonly permanent: boolean,
    cause: unknown,
  ) {
    super('ERR_METER_DELIVERY_FAILED', message, { cause });
  }
}

/**
 * Stripe refused the secret key (401/403 on a session, a direct event or an adjustment). Sending
 * stops, events stay queued, and one request probes at a growing interval until the key works again.
 */
export class MeterUnauthorizedError extends MeterError {
  override readonly name = 'MeterUnauthorizedError';
  constructor(
    /** Stripe's status: 401 (the key is unknown or revoked) or 403 (the key lacks a permission). */
    readonly status: number,
    cause: unknown,
  ) {
    super(
      'ERR_METER_UNAUTHORIZED',
      `Stripe refused the API key (${status}); sending is paused, events stay queued, and a probe retries the key at a growing interval`,
      { cause },
    );
  }
}

/** A framework adapter could not meter a request (its customer resolver threw, …). */
export class MeterAdapterError extends MeterError {
  override readonly name = 'MeterAdapterError';
  constructor(message: string, cause?: unknown) {
    super('ERR_METER_ADAPTER', message, { cause });
  }
}

/** One event a previous process left in the spool, possibly billed already: its identifier and first attempt. */
export interface UncertainDelivery {
  readonly identifier: string;
  /** When a request carrying it was first sent (ms since the epoch). */
  readonly firstAttemptAt: number;
}

/**
 * Events found in the spool at start whose first attempt is older than Stripe's duplicate window
 * allows resending (`spool.resendWithinMs`, 23 h): they may or may not be billed. They are not
 * resent; reconcile them with Stripe by identifier (the events go to `onError` with this error).
 */
export class MeterUncertainError extends MeterError {
  override readonly name = 'MeterUncertainError';
  constructor(
    readonly deliveries: readonly UncertainDelivery[],
    /** What makes them uncertain: by default, a previous process's send too long ago to resend. */
    when = 'from a previous process were first sent longer ago than spool.resendWithinMs (23 h by default)',
  ) {
    super(
      'ERR_METER_DELIVERY_UNCERTAIN',
      `${deliveries.length} meter event(s) ${when} with no known outcome; they are not resent, as Stripe may no longer deduplicate them: reconcile them with Stripe by identifier`,
    );
  }
}

/** The on-disk spool cannot be opened or written; `path` is the spool file, `sqliteCode` SQLite's code. */
export class MeterSpoolError extends MeterError {
  override readonly name = 'MeterSpoolError';
  constructor(
    code: Extract<MeterErrorCode, `ERR_METER_SPOOL_${string}`>,
    readonly path: string,
    message: string,
    /** SQLite's extended result code (`SQLITE_FULL`, `SQLITE_IOERR_WRITE`, …), when SQLite raised it. */
    readonly sqliteCode?: string,
    cause?: unknown,
  ) {
    super(code, message, { cause });
  }
}

/**
 * A store of your own (the `store` option) threw; `method` is the one that did (`take`, `settle`, …)
 * and `cause` what it threw. Told to `onError`, or thrown by `report()` (`push`), by an attempt to send
 * (`markAttempted`: the attempt is retried) and by `ledger()`.
 */
export class MeterStoreError extends MeterError {
  override readonly name = 'MeterStoreError';
  constructor(
    readonly method: string,
    cause: unknown,
  ) {
    super('ERR_METER_STORE_FAILED', `The event store's ${method}() threw: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
