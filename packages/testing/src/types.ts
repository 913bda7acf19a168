// Public types of @metered/testing: the fake's options, its handle, and the records it exposes to tests.
import type { MeterError, MeterEvent, PayloadKeys } from '@metered/core';

/** How a meter aggregates the values of its events (Stripe's `default_aggregation.formula`). */
export type MeterFormula = 'sum' | 'count' | 'last';

/** A meter's status: events sent to an `inactive` (archived) meter are rejected with `archived_meter`. */
export type MeterStatus = 'active' | 'inactive';

/** The endpoints the fake serves; used to aim faults and rate limits. `meters` covers the v1 meter routes, `events` `GET /v2/core/events/{id}`. */
export type FakeEndpoint =
  | 'meter_events'
  | 'meter_event_session'
  | 'meter_event_stream'
  | 'meter_event_adjustments'
  | 'meters'
  | 'events';

/** Which listener received a request: the API host or the meter-events host. */
export type HostKind = 'api' | 'meter_events';

/** How an accepted event reached the fake. */
export type EventChannel = 'direct' | 'stream';

/** A meter to register; a bare string is shorthand for `{ event_name }` with every default. */
export interface MeterDefinition {
  /** The `event_name` events must carry to be counted by this meter. */
  event_name: string;
  /**
   * Payload key holding the Stripe customer id (`customer_mapping.event_payload_key`).
   * @default 'stripe_customer_id'
   */
  customerKey?: string;
  /**
   * Payload key holding the value (`value_settings.event_payload_key`).
   * @default 'value'
   */
  valueKey?: string;
  /**
   * Aggregation formula used by totals and event summaries.
   * @default 'sum'
   */
  formula?: MeterFormula;
  /**
   * Initial status; `inactive` stands for an archived (deactivated) meter.
   * @default 'active'
   */
  status?: MeterStatus;
  /**
   * Meter id as listed by `GET /v1/billing/meters`.
   * @default a generated `mtr_…` id
   */
  id?: string;
  /**
   * Display name shown in `GET /v1/billing/meters`.
   * @default the event name
   */
  displayName?: string;
}

/** A registered meter as the fake holds it. */
export interface FakeMeter {
  readonly id: string;
  readonly event_name: string;
  readonly customerKey: string;
  readonly valueKey: string;
  readonly formula: MeterFormula;
  readonly status: MeterStatus;
  readonly displayName: string;
  /** Creation time, Unix seconds. */
  readonly created: number;
  /** Last status change, Unix seconds. */
  readonly updated: number;
  /** When the meter was archived, Unix seconds; null while active. */
  readonly deactivatedAt: number | null;
}

/** The meter registry of a running fake. Lookups accept a meter id or an event name. */
export interface MeterRegistry {
  /** Registers a meter; throws if a meter with that id or event name exists. */
  add(definition: string | MeterDefinition): FakeMeter;
  /** The meter with this id or event name, if any. */
  get(idOrEventName: string): FakeMeter | undefined;
  /** Every meter, oldest first. */
  list(): FakeMeter[];
  /** Deactivates a meter: later events get `archived_meter`. Throws if unknown. */
  archive(idOrEventName: string): FakeMeter;
  /** Reactivates an archived meter. Throws if unknown. */
  reactivate(idOrEventName: string): FakeMeter;
  /** Deletes a meter so that its events get `no_meter`; false if it did not exist. */
  remove(idOrEventName: string): boolean;
}

/** Account-wide token bucket standing in for Stripe's request rate limiter. */
export interface RateLimitOptions {
  /** Tokens added per second (Stripe's sandbox allows 25 requests/s). */
  requestsPerSecond: number;
  /**
   * Bucket size: how many requests may arrive at once after an idle period.
   * @default requestsPerSecond
   */
  burst?: number;
  /**
   * Endpoints that spend tokens; the others are never limited.
   * @default every endpoint
   */
  endpoints?: readonly FakeEndpoint[];
  /**
   * Send a `Retry-After` header (whole seconds until a token is free) with each 429.
   * @default true
   */
  retryAfter?: boolean;
}

/** Options of {@link startFakeStripe}. */
export interface FakeStripeOptions {
  /**
   * Interface both listeners bind to.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * Port of the API listener (`url`); 0 picks a free one.
   * @default 0
   */
  port?: number;
  /**
   * Port of the meter-events listener (`meterEventsUrl`); 0 picks a free one.
   * @default 0
   */
  meterEventsPort?: number;
  /**
   * The only secret key the API endpoints accept (`sk_…` or `rk_…`).
   * @default a generated `sk_test_…` key
   */
  apiKey?: string;
  /**
   * Lifetime of meter event session tokens, in milliseconds.
   * @default 900_000 (15 minutes, as Stripe)
   */
  sessionTtlMs?: number;
  /**
   * Meters to register at start.
   * @default ['api_requests']
   */
  meters?: ReadonlyArray<string | MeterDefinition>;
  /**
   * Account-wide rate limit; 429 with `Retry-After` once the bucket is empty.
   * @default off
   */
  rateLimit?: RateLimitOptions | false;
  /**
   * Seed of the pseudo-random generator behind fault fractions, so a run can be replayed.
   * @default 1
   */
  seed?: number;
  /**
   * Clock in epoch milliseconds, used for token expiry, the timestamp window, the 24 h dedup window,
   * the rate limiter and every `created` field; tests drive time through it.
   * @default Date.now
   */
  now?: () => number;
  /**
   * Delay added before every response, in milliseconds (real time).
   * @default 0
   */
  latencyMs?: number;
  /**
   * Size of the request-log ring buffer; 0 disables the log.
   * @default 10_000
   */
  maxLoggedRequests?: number;
  /**
   * Keep request and response bodies in the log; turn off for benchmarks.
   * @default true
   */
  logBodies?: boolean;
  /**
   * `livemode` reported in every object the fake returns.
   * @default false
   */
  livemode?: boolean;
  /**
   * The customers that exist; a stream event naming another is rejected asynchronously with
   * `meter_event_customer_not_found` (and `POST /v2/billing/meter_events` answers 400 `resource_missing`).
   * @default undefined (every customer id exists)
   */
  customers?: readonly string[];
  /**
   * An event destination for Stripe's meter error events (`v1.billing.meter.error_report_triggered`,
   * `v1.billing.meter.no_meter_found`), sent thin and signed for asynchronously rejected stream events.
   * @default { url: null } (reports are kept; set a URL with `webhooks.setUrl()` to send them)
   */
  webhook?: FakeWebhookOptions;
}

/** The fake's event destination. */
export interface FakeWebhookOptions {
  /**
   * Where reports are POSTed.
   * @default null (kept until `webhooks.setUrl()`)
   */
  url?: string | null;
  /**
   * Signing secrets; each signs every delivery (one `v1=` per secret, as Stripe does while a secret is rolled).
   * @default one generated `whsec_…` secret
   */
  secrets?: readonly string[];
  /**
   * How long rejections are collected into one report per meter before it is sent (Stripe's example report spans 10 s).
   * @default 1000
   */
  batchWindowMs?: number;
}

/** One POST of a meter error event to the destination. */
export interface WebhookDelivery {
  /** The Stripe event id (`evt_test_…`), also served by `GET /v2/core/events/{id}`. */
  readonly eventId: string;
  readonly type: 'v1.billing.meter.error_report_triggered' | 'v1.billing.meter.no_meter_found';
  readonly url: string | null;
  /** The exact body sent (the thin event, without `data`). */
  readonly body: string;
  /** The `Stripe-Signature` header sent. */
  readonly signature: string;
  /** The destination's answer; null when nothing answered. */
  readonly status: number | null;
  /** Why nothing answered (no URL, connection refused), or null. */
  readonly error: string | null;
}

/** The event destination of a running fake. */
export interface FakeWebhooks {
  /** Where reports go, or null. */
  readonly url: string | null;
  /** The signing secrets, to configure the app's handler with. */
  readonly secrets: readonly string[];
  /** Points the destination somewhere else (the app's port is often known only after the fake starts). */
  setUrl(url: string | null): void;
  /** Sends every pending report now, without waiting for the batching window. */
  flush(): Promise<WebhookDelivery[]>;
  /** Deliveries so far, oldest first. */
  deliveries(): WebhookDelivery[];
  /** Resolves once `count` deliveries (default 1) have been attempted. */
  delivered(count?: number): Promise<void>;
}

/** An event the fake accepted and counts (after dedup, minus cancelled ones). */
export interface MeterEventRecord {
  readonly eventName: string;
  readonly identifier: string;
  readonly customer: string;
  /** The value exactly as sent. */
  readonly value: string;
  /** The value as a number; may be inexact above `Number.MAX_SAFE_INTEGER` (use `value` then). */
  readonly numericValue: number;
  /** RFC 3339 event time: the one sent, or the receive time when none was sent. */
  readonly timestamp: string;
  readonly payload: Readonly<Record<string, string>>;
  readonly via: EventChannel;
  /** Receive time, epoch milliseconds on the fake's clock. */
  readonly receivedAt: number;
  /** Id of the meter that counted the event. */
  readonly meterId: string;
  /** The connected account (`Stripe-Context`) the event was recorded under; absent for the platform's own. */
  readonly account?: string;
}

/** Codes Stripe uses in `v1.billing.meter.error_report_triggered` for events rejected after acceptance. */
export type AsyncErrorCode =
  | 'archived_meter'
  | 'meter_event_customer_not_found'
  | 'meter_event_invalid_value'
  | 'meter_event_no_customer_defined'
  | 'meter_event_value_too_many_digits'
  | 'no_meter'
  | 'timestamp_in_future'
  | 'timestamp_too_far_in_past';

/** Codes the synchronous endpoint (`POST /v2/billing/meter_events`) answers for the same faults. */
export type SyncErrorCode =
  | 'archived_meter'
  | 'no_meter'
  | 'payload_invalid_value'
  | 'payload_no_customer_defined'
  | 'payload_no_value_defined'
  | 'resource_missing'
  | 'timestamp_in_future'
  | 'timestamp_too_far_in_past';

/** A stream event that passed request validation but that Stripe would reject asynchronously. */
export interface RejectedEventRecord {
  /** The code Stripe reports in its error report event. */
  readonly code: AsyncErrorCode;
  /** What `POST /v2/billing/meter_events` would have answered for the same event. */
  readonly syncCode: SyncErrorCode;
  /** The Stripe event type that would report it. */
  readonly report: 'v1.billing.meter.error_report_triggered' | 'v1.billing.meter.no_meter_found';
  readonly message: string;
  readonly eventName: string;
  /** The identifier sent, or the one the fake generated. */
  readonly identifier: string;
  readonly event: Readonly<Record<string, unknown>>;
  readonly receivedAt: number;
  /** The connected account (`Stripe-Context`) it was sent under; absent for the platform's own. */
  readonly account?: string;
}

/** A meter event adjustment the fake received, and what it did. */
export interface AdjustmentRecord {
  readonly id: string;
  readonly eventName: string;
  readonly identifier: string;
  /** True when an event was cancelled (removed from events and totals). */
  readonly applied: boolean;
  /** Why a cancellation had no effect (Stripe processes adjustments asynchronously and answers `pending`). */
  readonly reason: 'not_found' | 'already_cancelled' | 'outside_24h_window' | null;
  readonly receivedAt: number;
  /** The connected account (`Stripe-Context`) the adjustment was sent under; absent for the platform's own. */
  readonly account?: string;
}

/** One entry of the request log; secrets are redacted. */
export interface LoggedRequest {
  /** The `Request-Id` header the fake answered with. */
  readonly id: string;
  readonly method: string;
  readonly host: HostKind;
  /** Path without the query string. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The endpoint the path names (whatever the host), or null for an unknown route. */
  readonly endpoint: FakeEndpoint | null;
  /** Response status; null when the connection was reset without a response. */
  readonly status: number | null;
  /** Lower-cased request headers; credentials are replaced by their kind, e.g. `Bearer sk_test_[REDACTED]`. */
  readonly headers: Readonly<Record<string, string>>;
  /** Parsed JSON body (the raw text when it was not JSON); undefined without a body or with `logBodies: false`. */
  readonly body: unknown;
  /** Parsed response body with session tokens redacted; undefined after a reset or with `logBodies: false`. */
  readonly response: unknown;
  /** The fault that shaped the outcome, if any. */
  readonly fault: FaultKind | null;
  /** Arrival time on the fake's clock, epoch milliseconds. */
  readonly time: number;
  /** Real time from arrival to response (or reset), milliseconds. */
  readonly durationMs: number;
}

/** Kinds of outcome the fault controller can force. */
export type FaultKind = 'fail' | 'fail_after_processing' | 'reset' | 'reset_after_processing' | 'outage' | 'rate_limit';

/** Which requests a fault applies to, and how many. */
export interface FaultTarget {
  /**
   * Endpoint(s) the fault applies to.
   * @default every endpoint
   */
  endpoint?: FakeEndpoint | readonly FakeEndpoint[];
  /**
   * Trigger on this many matching requests, then retire (with `fraction`: at most this many).
   * @default 1 without `fraction`, unlimited with it
   */
  count?: number;
  /**
   * Trigger on this fraction (0–1] of matching requests, drawn from the seeded generator.
   * @default undefined (every matching request, up to `count`)
   */
  fraction?: number;
}

/** A forced error response in Stripe's error shape. */
export interface FailFault extends FaultTarget {
  /**
   * HTTP status to answer with.
   * @default 500
   */
  status?: number;
  /**
   * Seconds to send in a `Retry-After` header.
   * @default no header
   */
  retryAfter?: number;
  /**
   * `error.type` of the body.
   * @default derived from the status (`api_error` for 5xx, `invalid_request_error` otherwise)
   */
  type?: string;
  /**
   * `error.code` of the body.
   * @default derived from the status (e.g. `rate_limit` for 429)
   */
  code?: string;
  /**
   * `error.message` of the body.
   * @default a generic message for the status
   */
  message?: string;
  /**
   * Process the request first (events are accepted), then answer the error: a lost response.
   * @default false
   */
  afterProcessing?: boolean;
}

/** A connection destroyed without any response. */
export interface ResetFault extends FaultTarget {
  /**
   * Process the request first (events are accepted), then reset the connection.
   * @default false
   */
  afterProcessing?: boolean;
}

/** Extra real-time delay before responding. */
export interface DelayFault extends FaultTarget {
  /** Milliseconds to wait before the response is sent. */
  ms: number;
}

/** How a full outage fails requests. */
export interface OutageOptions {
  /**
   * `error` answers `status` in Stripe's shape; `reset` destroys every connection.
   * @default 'error'
   */
  mode?: 'error' | 'reset';
  /**
   * Status answered in `error` mode.
   * @default 503
   */
  status?: number;
}

/** A fault that was installed; lets a test see how often it fired or retire it early. */
export interface FaultHandle {
  /** How many requests the fault has affected so far. */
  readonly triggered: number;
  /** Resolves once the fault has affected `n` requests (default 1): lets a test act while a request is delayed or parked. */
  reached(n?: number): Promise<void>;
  /** Retires the fault. */
  remove(): void;
}

/** Requests parked after processing, before their response, until released: a deterministic "slow response". */
export interface HeldRequests extends FaultHandle {
  /** Sends every parked response and stops parking new requests (`remove()` does the same). */
  release(): void;
}

/** Fault injection of a running fake. */
export interface FaultController {
  /** Answer matching requests with an error status in Stripe's shape. */
  fail(fault?: FailFault): FaultHandle;
  /** Destroy the connection of matching requests without a response. */
  resetConnection(fault?: ResetFault): FaultHandle;
  /** Delay the response of matching requests. */
  delay(fault: DelayFault): FaultHandle;
  /** Park matching requests after processing until `release()`. */
  hold(target?: FaultTarget): HeldRequests;
  /** Expire every session token issued so far; returns how many were live. */
  expireSessions(): number;
  /** Turn a full outage on (every request on both hosts fails) or off. */
  outage(state: boolean | OutageOptions): void;
  /** Remove every fault, end an outage, and answer parked and delayed requests now. */
  clear(): void;
}

/** `v2.billing.meter_event_session` as Stripe returns it. */
export interface MeterEventSessionObject {
  readonly id: string;
  readonly object: 'v2.billing.meter_event_session';
  readonly authentication_token: string;
  readonly created: string;
  readonly expires_at: string;
  readonly livemode: boolean;
}

/** Which account's aggregates `totals()` and `exactTotals()` read. */
export interface TotalsFilter {
  /**
   * The connected account (`acct_…`, the `Stripe-Context` the events were sent under), each kept apart as Stripe does.
   * @default undefined (the platform's own events)
   */
  readonly account?: string | undefined;
}

/** Per-customer, per-event-name aggregates: `totals()[customer][eventName]`. */
export type MeterTotals<T> = Record<string, Record<string, T>>;

/** Counters since start (or the last reset), cheap to read in benchmarks. */
export interface FakeStripeStats {
  readonly requests: number;
  readonly acceptedEvents: number;
  readonly rejectedEvents: number;
  readonly duplicateEvents: number;
}

/** A running fake Stripe. */
export interface FakeStripe {
  /** Base URL of the API host (stand-in for https://api.stripe.com), e.g. `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Base URL of the meter-events host (stand-in for https://meter-events.stripe.com); serves only the stream. */
  readonly meterEventsUrl: string;
  /** Port of `url`. */
  readonly port: number;
  /** Port of `meterEventsUrl`. */
  readonly meterEventsPort: number;
  /** The secret key the API endpoints accept. */
  readonly apiKey: string;
  /** Meter registry. */
  readonly meters: MeterRegistry;
  /** Fault injection. */
  readonly faults: FaultController;
  /** The event destination for meter error events. */
  readonly webhooks: FakeWebhooks;
  /** Accepted events (after dedup, minus cancelled), oldest first. */
  events(): MeterEventRecord[];
  /** Stream events rejected asynchronously (the stand-in for Stripe's error report events), oldest first. */
  rejected(): RejectedEventRecord[];
  /** Adjustments received, oldest first. */
  adjustments(): AdjustmentRecord[];
  /**
   * Aggregates by meter formula: `totals()[customer][eventName]`, of the platform's own events or, with
   * `{ account }`, of one connected account's. Throws a `FakeStripeError` with code
   * `ERR_FAKE_STRIPE_PRECISION` when an aggregate exceeds `Number.MAX_SAFE_INTEGER`; use `exactTotals()` then.
   */
  totals(filter?: TotalsFilter): MeterTotals<number>;
  /** Aggregates as exact bigints; the same `{ account }` filter as `totals()`. */
  exactTotals(filter?: TotalsFilter): MeterTotals<bigint>;
  /** The request log (a ring buffer), oldest first; secrets redacted. */
  requests(): LoggedRequest[];
  /** Counters since start or the last reset. */
  stats(): FakeStripeStats;
  /** Issues a session directly, as `POST /v2/billing/meter_event_session` would (under `account`'s `Stripe-Context` when given). */
  createSession(account?: string): MeterEventSessionObject;
  /** Clears events, rejections, adjustments, the dedup window, the request log, faults and the rate limiter; keeps meters and sessions. */
  reset(): void;
  /** Stops both listeners and drops open connections. */
  close(): Promise<void>;
}

/** Codes of errors thrown by the fake's JavaScript API (never sent over HTTP). */
export type FakeStripeErrorCode =
  | 'ERR_FAKE_STRIPE_CONFIG'
  | 'ERR_FAKE_STRIPE_UNKNOWN_METER'
  | 'ERR_FAKE_STRIPE_DUPLICATE_METER'
  | 'ERR_FAKE_STRIPE_PRECISION'
  | 'ERR_FAKE_STRIPE_SPEC_MISSING'
  | 'ERR_FAKE_STRIPE_SPEC_INVALID';

/** A meter event as both v2 endpoints take it. */
export interface MeterEventBody {
  event_name: string;
  payload: Record<string, string>;
  identifier?: string;
  timestamp?: string;
}

/** Optional parts of `meterEvent()`. */
export interface MeterEventOverrides {
  /**
   * Event name of the meter.
   * @default 'api_requests' (DEFAULT_METER_EVENT_NAME)
   */
  event_name?: string;
  /**
   * Identifier for dedup.
   * @default none (Stripe, and the fake, generate one)
   */
  identifier?: string;
  /**
   * Event time: a Date, epoch milliseconds or an RFC 3339 string.
   * @default none (the receive time)
   */
  timestamp?: Date | number | string;
  /**
   * Extra payload entries, merged over the customer and value.
   * @default {}
   */
  payload?: Record<string, string>;
}

/** A clock for the `now` option that moves only when told to. */
export interface ManualClock {
  /** Current time, epoch milliseconds; pass this as `now`. */
  readonly now: () => number;
  /** Moves the clock forward (or back, with a negative value). */
  advance(ms: number): void;
  /** Sets the clock. */
  set(epochMs: number): void;
}

// ---- the test kit (createTestReporter and the billing assertions) ----

/** Options of `createTestReporter(options?)`. */
export interface TestReporterOptions {
  /**
   * The meter's payload keys, checked as a real reporter checks them (a dimension may not reuse them).
   * @default { customer: 'stripe_customer_id', value: 'value' }
   */
  payloadKeys?: PayloadKeys;
  /**
   * The clock behind the timestamp window (35 days back, 5 minutes ahead) and `cancel()`'s `created`.
   * @default Date.now
   */
  now?: () => number;
  /**
   * Called with each error handed to `handleError()`, after it is recorded (a throwing hook is ignored).
   * @default undefined (recorded only; read them with `errors()`)
   */
  onError?: (error: MeterError, events: readonly MeterEvent[]) => void;
}

/** An error a test reporter was handed by `handleError()`, with the events it concerns (often none). */
export interface RecordedMeteringError {
  readonly error: MeterError;
  readonly events: readonly MeterEvent[];
}

/** Where the billing assertions read totals from: a test reporter or a fake Stripe. */
export interface BilledTotalsSource {
  totals(): MeterTotals<number>;
}

/** Totals a test expects: `expected[customer][eventName]`. */
export type ExpectedTotals = Readonly<Record<string, Readonly<Record<string, number>>>>;
