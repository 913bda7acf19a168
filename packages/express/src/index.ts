// @metered/express public API: an explicit list, nothing internal re-exported.
export { meterUsage } from './meter-usage';
export { meterRoute, skipMetering } from './route';
export { meterErrorWebhook, DEFAULT_WEBHOOK_PATH } from './webhook';
export { MeterRejectedEventError, MeterVerifyError } from '@metered/core';
export type { VerifyMetersMode, VerifyMetersResult } from '@metered/core';
export { closeOnSignal, DEFAULT_SHUTDOWN_SIGNALS, DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_SHUTDOWN_CLOSE_TIMEOUT_MS } from './close-on-signal';
export type { RouteMiddleware } from './route';
// The defaults every adapter shares, defined once in core.
export {
  DEFAULT_EVENT_NAME,
  DEFAULT_VALUE,
  DEFAULT_BILL_ABORTED,
  DEFAULT_IDENTIFIER,
  DEFAULT_IDEMPOTENCY_KEY_HEADER,
  DEFAULT_RESOLVE_TIMEOUT_MS,
  DEFAULT_ABORT_GRACE_MS,
} from '@metered/core';
// A handler sets its own request's value or event name (tokens known only at the end), or opts out.
export { setRequestUsage, skipRequestMetering, MeterReporter, MeterAdapterError, MeterConfigError } from '@metered/core';
export type {
  MeteringMiddlewareOptions,
  MeterErrorWebhookRouterOptions,
  MeterUsageOptions,
  MeteredRequest,
  MeteredUser,
  RouteMeteringOptions,
  MeteringMiddleware,
  MeteringStats,
  SkippedCounts,
  MeterValue,
  EventNameResolver,
  ValueResolver,
  CustomerResolver,
  AccountResolver,
  BillIf,
  IdentifierSource,
  CloseOnSignalOptions,
  ShutdownResult,
  GracefulShutdown,
} from './types';
