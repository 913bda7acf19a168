// Public types of @metered/nestjs: the module's options, the decorator's options, and the resolver shapes.
import type { MeterReporter, MeterReporterOptions, VerifyMetersMode } from '@metered/core';
import type { ExecutionContext, InjectionToken, ModuleMetadata, OptionalFactoryDependency, Type } from '@nestjs/common';

/** A usage amount as core accepts it: a positive integer as a number, bigint or string of digits. */
export type MeterValue = number | bigint | string;

/**
 * How much a request used, computed from the execution context and what the handler returned (for a
 * streamed Observable, its last value). Runs after the response has been sent; may be async.
 */
export type ValueResolver<TResult = unknown> = (context: ExecutionContext, result: TResult) => MeterValue | Promise<MeterValue>;

/** Picks the Stripe customer (`cus_…`) who pays for a request; runs after the response has been sent. */
export type CustomerResolver = (context: ExecutionContext) => string | undefined | Promise<string | undefined>;

/**
 * Picks the Stripe Connect account (`acct_…`) a request is billed under; `undefined` (or `''`) bills the
 * platform's own meters. Runs after the response has been sent.
 */
export type AccountResolver = (context: ExecutionContext) => string | undefined | Promise<string | undefined>;

/** How a request ended, as `billIf` sees it. */
export interface MeteringOutcome {
  /** The status code sent to the client. */
  readonly statusCode: number;
  /**
   * What the handler (or a pipe, or an interceptor after this one) threw; undefined when it returned.
   * Seen only on routes metered through `MeterUsageInterceptor` (a value that reads the handler's
   * result, or the interceptor applied by hand): elsewhere undefined, and `statusCode` tells.
   */
  readonly error: unknown;
  /** What the handler returned (for a streamed Observable, its last value); undefined after an error, and where `error` is not seen. */
  readonly result: unknown;
}

/** Decides whether a finished request counts; runs after the response has been sent; may be async. */
export type BillIf = (context: ExecutionContext, outcome: MeteringOutcome) => boolean | Promise<boolean>;

/** Where a request's meter event identifier comes from. */
export type IdentifierSource = 'generated' | 'idempotency-key';

/** Options of `MeteringModule.forRoot(options)`, or what `forRootAsync`'s factory returns. */
export interface MeteringModuleOptions {
  /**
   * The reporter that delivers events, or options to create one. A reporter the module creates is
   * closed when the application shuts down; a reporter passed in is only flushed (its owner closes it).
   */
  reporter: MeterReporter | MeterReporterOptions;
  /**
   * The meter's `event_name` for routes whose `@MeterUsage()` names none (and for undecorated routes
   * with `meterAllRoutes`).
   * @default 'api_requests'
   */
  eventName?: string;
  /**
   * Who pays. Never read the payer from a header or query parameter a client controls: a guard that
   * authenticates the request is where the customer comes from. Returning `undefined` (or `''`)
   * leaves the request unbilled (an anonymous request to a route that is free without an account).
   * @default the authenticated user's `request.user.stripeCustomerId` (then Express's `res.locals.stripeCustomerId`)
   */
  customer?: CustomerResolver;
  /**
   * The Stripe Connect account whose meters bill the request (its events go under that account's
   * `Stripe-Context`). Called after the response has been sent, like `customer`; read it from what a
   * guard established (the tenant of the API key), never from a header a client controls.
   * @default undefined (every request bills the platform's own meters)
   */
  account?: AccountResolver;
  /**
   * Which finished requests count. Requests rejected by a guard never reach the interceptor and are
   * never billed, whatever this says.
   * @default no error was thrown and the status code is 2xx
   */
  billIf?: BillIf;
  /**
   * Whether a request whose client disconnected before its response started (nothing sent yet) is
   * billed too, if `billIf` agrees. A response that had started (headers sent: an SSE stream cut
   * short, say) is billed either way, as `billIf` decides.
   * @default false
   */
  billAborted?: boolean;
  /**
   * How long, after a client disconnects, the handler may still return (or its Observable
   * complete) to have the request billed as completed, with its result. 0 turns this off; at most
   * 60000. Shutdown waits for it within `shutdownTimeoutMs`.
   * @default 0
   */
  abortGraceMs?: number;
  /**
   * Whether routes without `@MeterUsage()` (on the method or its controller) are metered too, with
   * `eventName` and a value of 1. `@SkipMetering()` still excludes a route.
   * @default false
   */
  meterAllRoutes?: boolean;
  /**
   * `'generated'`: every request gets a fresh identifier. `'idempotency-key'`: a request carrying an
   * `Idempotency-Key` header gets an identifier derived from customer, event name, HTTP method,
   * route (controller and handler) and key, so a client's retries of one operation bill once
   * (within Stripe's 24-hour deduplication window) and a key reused on another route bills again.
   * @default 'generated'
   */
  identifier?: IdentifierSource;
  /**
   * The header read when `identifier` is `'idempotency-key'`.
   * @default 'idempotency-key'
   */
  idempotencyKeyHeader?: string;
  /**
   * How long each `customer`, `billIf` or value function may take before the request is given up and
   * reported as a `MeterAdapterError` (nothing is billed for it).
   * @default 1000
   */
  resolveTimeoutMs?: number;
  /**
   * On application shutdown, how long to wait for requests still being metered and for the reporter
   * to deliver what is queued (`close()` of a reporter the module created, `flush()` of one passed in).
   * @default 10000
   */
  shutdownTimeoutMs?: number;
  /**
   * What the application does at bootstrap with Stripe's meters for the event names its routes bill: `'warn'`
   * logs each problem (checked in the background), `'fail'` makes `app.init()` / `listen()` reject with
   * `MeterVerifyError` listing every problem, `'off'` asks Stripe nothing.
   * @default 'warn'
   */
  verifyMeters?: VerifyMetersMode;
  /**
   * Receives Stripe's meter error events at `webhook.path` and reports each rejected event to `onError`. The
   * application must be created with `{ rawBody: true }`. With `forRootAsync`, declare it there too.
   * @default undefined (no webhook controller)
   */
  webhook?: MeteringWebhookOptions;
}

/** The meter error webhook of `MeteringModule`: where Stripe's event destination posts, and how it is verified. */
export interface MeteringWebhookOptions {
  /**
   * The route of the controller (under the application's global prefix, if it has one).
   * @default '/stripe/meter-errors'
   */
  path?: string;
  /** The event destination's signing secret (`whsec_…`), or several while it is rotated (any one may sign). */
  secrets: string | readonly string[];
  /**
   * Largest difference between the signature's timestamp and now, in seconds; a request outside it is refused.
   * @default 300
   */
  toleranceSeconds?: number;
}

/** A class that builds the module's options, for `forRootAsync({ useClass })`. */
export interface MeteringOptionsFactory {
  createMeteringOptions(): MeteringModuleOptions | Promise<MeteringModuleOptions>;
}

/** Options of `MeteringModule.forRootAsync(options)`: exactly one of `useFactory`, `useClass`, `useExisting`. */
export interface MeteringModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /**
   * Builds the options from injected providers (`ConfigService`, …).
   * @default undefined
   */
  // `any[]` as in Nest's own FactoryProvider: a factory's parameters are typed by its author.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  useFactory?: (...args: any[]) => MeteringModuleOptions | Promise<MeteringModuleOptions>;
  /**
   * Providers handed to `useFactory`, in order.
   * @default []
   */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  /**
   * A `MeteringOptionsFactory` class the module instantiates.
   * @default undefined
   */
  useClass?: Type<MeteringOptionsFactory>;
  /**
   * An existing provider (from `imports`) implementing `MeteringOptionsFactory`.
   * @default undefined
   */
  useExisting?: InjectionToken<MeteringOptionsFactory>;
  /**
   * Registers the meter error webhook controller at `path`; the factory's options then carry `webhook.secrets`.
   * Given here because Nest registers controllers before the factory runs.
   * @default undefined (no webhook controller; a factory returning `webhook` is refused)
   */
  webhook?: Pick<MeteringWebhookOptions, 'path'>;
}

/** Options of `@MeterUsage(eventName, options)`: how one route (or every route of a controller) is billed. */
export interface MeterUsageRouteOptions<TResult = unknown> {
  /**
   * How much one request uses: a positive integer, or a (possibly async) function of the execution
   * context and the handler's result. A value of 0 bills nothing. A handler's
   * `setRequestUsage(req, { value })` wins over it.
   * @default 1
   */
  value?: MeterValue | ValueResolver<TResult>;
  /**
   * Extra payload keys for the meter's dimensions.
   * @default undefined
   */
  dimensions?: Readonly<Record<string, string>>;
}

/** One of several meters a route bills with `@MeterUsage([...])`. */
export interface MeterUsageMeter<TResult = unknown> {
  /** The meter's `event_name`. */
  eventName: string;
  /**
   * How much of this meter one request uses: a positive integer, or a (possibly async) function of
   * the execution context and the handler's result; 0 bills nothing for this meter.
   * @default 1
   */
  value?: MeterValue | ValueResolver<TResult>;
  /**
   * Extra payload keys for this meter's dimensions.
   * @default undefined
   */
  dimensions?: Readonly<Record<string, string>>;
}

/**
 * The old name of `MeterUsageRouteOptions`.
 * @deprecated Use `MeterUsageRouteOptions` (`@metered/express` has its own, different, `MeterUsageOptions`).
 */
export type MeterUsageOptions<TResult = unknown> = MeterUsageRouteOptions<TResult>;
