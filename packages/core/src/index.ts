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
  MeterUnauthorizedError,
  MeterSpoolError,
  MeterUncertainError,
  MeterStoreError,
} from './errors';
export type { MeterErrorCode, UncertainDelivery } from './errors';
export type { EventStore, QueuedEvent } from './store/queue';
// The store interface a spool, or a store of your own (Redis next), implements for the reporter.
export type {
  DurableEventStore,
  SettleOutcome,
  SpoolOptions,
  SpoolDurability,
  SpoolSynchronous,
  RecoveredEvents,
  UncertainEvent,
  LedgerQuery,
  LedgerRow,
  LedgerTally,
} from './store/types';
// Building blocks for stores and limiters of your own (@metered/redis uses them as its local fallbacks).
export { MemoryDurableStore } from './store/memory-store';
export { openSpoolOrMemory } from './store/spool-store';
export { MemoryLedger } from './store/ledger';
export { Pacer } from './delivery/pacer';
export {
  claimRequest,
  releaseClaim,
  setRequestUsage,
  handOverRequestUsage,
  skipRequestMetering,
  getRequestUsage,
  requestUsageOf,
  hasRequestUsage,
  defaultCustomerId,
  identifierFromIdempotencyKey,
  withTimeout,
} from './request-metering';
export type { EndableResponse, HandedOverUsage, RequestMeteringState } from './request-metering';
export { eventsOfRequest, requestBaseIdentifier } from './request-events';
export { METRICS_SCOPE } from './metrics/metrics';
export { MAX_AGGREGATE_WINDOW_MS, DEFAULT_AGGREGATE_GRACE_MS } from './aggregate/options';
export type { RequestUsageEvent, RequestEventsContext } from './request-events';
// The adapter kit: what @metered/express and @metered/nestjs share, so each is only framework glue.
export { meterRequest, meterRequestNow, reportMeteringFailure, finishedWithin, endingAtClose, responseEnding } from './adapter-kit';
export type { RequestMeteringAdapter, RequestMeteringOutcome, ResponseEnding } from './adapter-kit';
export { whenResponseDone, whenHandlerEnds } from './response-end';
export {
  DEFAULT_EVENT_NAME,
  DEFAULT_VALUE,
  DEFAULT_BILL_ABORTED,
  DEFAULT_IDENTIFIER,
  DEFAULT_IDEMPOTENCY_KEY_HEADER,
  DEFAULT_RESOLVE_TIMEOUT_MS,
  DEFAULT_ABORT_GRACE_MS,
  MAX_ABORT_GRACE_MS,
} from './adapter-options';
export { billsByDefault, resolveAdapterOptions, optionalFunction, optionalBoolean, optionalMilliseconds, checkEventNameOption, checkValueOption } from './adapter-options';
export type { AdapterOptions, AdapterOptionsSpec, ResolvedAdapterOptions, IdentifierSource, MeterValue } from './adapter-options';
export { redactSecrets } from './redact';
// Report()'s own checks, for code that takes events without sending them (@metered/testing's reporter).
export { validateMeterEvent, validateCancellation } from './intake/validate-event';
export {
  DEFAULT_API_BASE_URL,
  DEFAULT_METER_EVENTS_BASE_URL,
  DEFAULT_STRIPE_VERSION,
  MAX_STREAM_BATCH,
} from './config';
export type {
  DeliveryMode,
  DeliveryThread,
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
  FlushOptions,
  FlushResult,
  MeterStats,
  MeterEventAdjustment,
  ReporterSpoolOptions,
  RequestLimiter,
  AggregateOptions,
  MetricsOptions,
  MetricsMeterProvider,
} from './types';
// Stripe's verdict read back: meter checks, signed meter error webhooks, reconciliation with the ledger.
export { MeterRejectedEventError, MeterWebhookSignatureError, MeterWebhookError, MeterVerifyError } from './verdict/errors';
export type { WebhookSignatureFailure } from './verdict/errors';
export { DEFAULT_WEBHOOK_TOLERANCE_SECONDS, signWebhookPayload, verifyWebhookSignature } from './verdict/webhook-signature';
export { createMeterErrorWebhook, resolveWebhookSecrets } from './verdict/webhook-handler';
export { METER_ERROR_EVENT_TYPES } from './verdict/meter-error-events';
export { reconcile, formatReconcileTable } from './verdict/reconcile';
export { runCli } from './verdict/cli';
export type { CliIo } from './verdict/cli';
export type {
  StripeConnection,
  StripeReader,
  MeterProblemCode,
  MeterProblem,
  MeterCheck,
  VerifyMetersResult,
  VerifyMetersOptions,
  VerifyMetersMode,
  RecentEvent,
  VerdictReporter,
  MeterErrorWebhookOptions,
  MeterErrorWebhook,
  WebhookAnswer,
  LedgerSource,
  ReconcileOptions,
  ReconcileRow,
  ReconcileResult,
} from './verdict/types';
export { DEFAULT_VERIFY_METERS_MODE, checkVerifyMetersMode, verifyAtStartup } from './verdict/startup';
export type { VerifyingReporter } from './verdict/startup';
