// The error @metered/redis reports: a MeterError with an ERR_METER_REDIS_* code, documented in docs/errors.md.
import { MeterError } from '@metered/core';
import type { MeterErrorCode, MeterEvent } from '@metered/core';

/** Codes of `MeterRedisError`. */
export type MeterRedisErrorCode = Extract<MeterErrorCode, `ERR_METER_REDIS_${string}`>;

/**
 * Redis could not be used as the queue or the limiter. Reported through `onError`; no event is lost
 * by it (the ones concerned wait in the local store), except as `ERR_METER_REDIS_UNFLUSHED` says.
 */
export class MeterRedisError extends MeterError {
  override readonly name = 'MeterRedisError';
  constructor(
    override readonly code: MeterRedisErrorCode,
    message: string,
    /** The events concerned, when the error is about particular ones (`ERR_METER_REDIS_UNFLUSHED`). */
    readonly events: readonly MeterEvent[] = [],
    cause?: unknown,
  ) {
    super(code, message, { cause });
  }
}
