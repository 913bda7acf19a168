// @metered/nestjs public API: an explicit list, nothing internal re-exported.
export { MeteringModule } from './metering.module';
export { MeterUsage, SkipMetering } from './meter-usage.decorator';
export type { ClassOrMethodDecorator } from './meter-usage.decorator';
export { MeterUsageInterceptor } from './meter-usage.interceptor';
export { DEFAULT_SHUTDOWN_TIMEOUT_MS, defaultBillIf, defaultCustomer } from './metering.options';
export { DEFAULT_WEBHOOK_PATH, MeteringVerdict } from './metering-verdict';
export type {
  AccountResolver,
  BillIf,
  CustomerResolver,
  IdentifierSource,
  MeteringModuleAsyncOptions,
  MeteringModuleOptions,
  MeteringOptionsFactory,
  MeteringWebhookOptions,
  MeteringOutcome,
  MeterUsageOptions,
  MeterUsageRouteOptions,
  MeterUsageMeter,
  MeterValue,
  ValueResolver,
} from './types';
// Re-exported so an app injects and reports through the same class the module provides.
export { MeterReporter, setRequestUsage, skipRequestMetering } from '@metered/core';
// The defaults every adapter shares, defined once in core.
export { DEFAULT_EVENT_NAME, DEFAULT_RESOLVE_TIMEOUT_MS } from '@metered/core';
// Stripe's verdict: the errors the webhook and the start-up meter check report, defined once in core.
export { MeterRejectedEventError, MeterVerifyError, MeterWebhookError, MeterWebhookSignatureError } from '@metered/core';
export type { VerifyMetersMode, VerifyMetersResult } from '@metered/core';
