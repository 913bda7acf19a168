// @metered/core public API: an explicit list, nothing internal re-exported.
export { MeterReporter } from './meter-reporter';
export {
  MeterError,
  MeterConfigError,
  MeterValidationError,
  MeterQueueFullError,
  MeterClosedError,
  StripeApiError,
  MeterDeliveryError,
  MeterAdapterError,
} from './errors';
export type { MeterErrorCode } from './errors';
export type { EventStore, QueuedEvent } from './queue';
export {
  METERING_STATE,
  claimRequest,
  setRequestUsage,
  skipRequestMetering,
  getRequestUsage,
  defaultCustomerId,
  identifierFromIdempotencyKey,
  withTimeout,
} from './request-metering';
export type { RequestMeteringState } from './request-metering';
export { redactSecrets } from './redact';
export {
  DEFAULT_API_BASE_URL,
  DEFAULT_METER_EVENTS_BASE_URL,
  DEFAULT_STRIPE_VERSION,
  MAX_STREAM_BATCH,
} from './config';
export type {
  DeliveryMode,
  OverflowPolicy,
  DropReason,
  MeterEventInput,
  MeterEvent,
  RetryOptions,
  PayloadKeys,
  MeterLogger,
  MeterReporterOptions,
  CloseOptions,
  CloseResult,
  MeterStats,
  MeterEventAdjustment,
} from './types';
