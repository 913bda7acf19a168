// @metered/testing public API: a Stripe-compatible fake of the V2 billing meter event API, and test helpers.
export { startFakeStripe } from './fake-stripe';
export { SPEC_PATH, loadStripeSpec, specProblems, trafficProblems } from './stripe-spec';
export type { SpecCheckOptions, SpecValidator } from './stripe-spec';
export { createManualClock, createSessionToken, meterEvent } from './helpers';
export { seededRandom } from './random';
// The test kit: an in-memory reporter and billing assertions for users' own suites (any runner).
export { TestReporter, createTestReporter } from './test-kit';
export { billedTotals, expectBilled, expectNoMeteringErrors, expectNothingBilled, expectOnlyBilled } from './test-kit-assertions';
export {
  DEDUP_WINDOW_MS,
  DEFAULT_CUSTOMER_PAYLOAD_KEY,
  DEFAULT_METER_EVENT_NAME,
  DEFAULT_VALUE_PAYLOAD_KEY,
  IDENTIFIER_MAX_LENGTH,
  SESSION_TTL_MS,
  STREAM_MAX_EVENTS,
  TIMESTAMP_MAX_AGE_MS,
  TIMESTAMP_MAX_FUTURE_MS,
  VALUE_MAX_SIGNIFICANT_DIGITS,
  DEFAULT_WEBHOOK_BATCH_WINDOW_MS,
} from './config';
export { SAMPLE_ERRORS_PER_CODE } from './webhook-emitter';
export { FakeStripeConfigError, FakeStripeError } from './errors';
export type {
  AdjustmentRecord,
  AsyncErrorCode,
  DelayFault,
  EventChannel,
  FailFault,
  FakeEndpoint,
  FakeMeter,
  FakeStripe,
  FakeStripeErrorCode,
  FakeStripeOptions,
  FakeStripeStats,
  FakeWebhookOptions,
  FakeWebhooks,
  WebhookDelivery,
  FaultController,
  FaultHandle,
  FaultKind,
  FaultTarget,
  HeldRequests,
  HostKind,
  LoggedRequest,
  BilledTotalsSource,
  ExpectedTotals,
  ManualClock,
  MeterDefinition,
  MeterEventBody,
  MeterEventOverrides,
  MeterEventRecord,
  MeterEventSessionObject,
  MeterFormula,
  MeterRegistry,
  MeterStatus,
  MeterTotals,
  TotalsFilter,
  OutageOptions,
  RateLimitOptions,
  RecordedMeteringError,
  RejectedEventRecord,
  ResetFault,
  SyncErrorCode,
  TestReporterOptions,
} from './types';
