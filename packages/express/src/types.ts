// Public types of @metered/express: the middleware's options, its handle, and its counters.
import type { CloseOptions, CloseResult, MeterErrorWebhookOptions, MeterReporter, MeterReporterOptions, VerifyMetersMode, VerifyMetersResult } from '@metered/core';
import type { NextFunction, Request, Response } from 'express';

/** A usage amount as core accepts it: a positive integer as a number, bigint or string of digits. */
export type MeterValue = number | bigint | string;

/**
 * The authenticated user as metering reads it: the default customer is `req.user.stripeCustomerId`.
 * Add your own fields with module augmentation, and they are typed in every resolver:
 * `declare module '@metered/express' { interface MeteredUser { plan: 'free' | 'pro' } }`.
 */
export interface MeteredUser {
  /** The Stripe customer (`cus_…`) who pays for this user's requests. */
  stripeCustomerId?: string;
}

/** An Express request as metering's resolvers see it: `req.user` is a `MeteredUser`. */
export type MeteredRequest = Request & { user?: MeteredUser };

/** Picks the meter's `event_name` for a request. */
export type EventNameResolver = (req: MeteredRequest, res: Response) => string;

/** Picks the amount billed for a request; runs after the response has finished. */
export type ValueResolver = (req: MeteredRequest, res: Response) => MeterValue | Promise<MeterValue>;

/** Picks the Stripe customer (`cus_…`) who pays for a request; runs after the response has finished. */
export type CustomerResolver = (req: MeteredRequest, res: Response) => string | undefined | Promise<string | undefined>;

/**
 * Picks the Stripe Connect account (`acct_…`) a request is billed under; `undefined` (or `''`) bills the
 * platform's own meters. Runs after the response has finished.
 */
export type AccountResolver = (req: MeteredRequest, res: Response) => string | undefined | Promise<string | undefined>;

/** Decides whether a request counts; runs after the response has finished. */
export type BillIf = (req: MeteredRequest, res: Response) => boolean;

/** Where a request's meter event identifier comes from. */
export type IdentifierSource = 'generated' | 'idempotency-key';

/** Options of `meterUsage(options)`. */
export interface MeteringMiddlewareOptions {
  /**
   * The reporter that delivers events, or options to create one (the middleware then owns it and
   * `middleware.close()` closes it).
   */
  reporter: MeterReporter | MeterReporterOptions;
  /**
   * The meter's `event_name` (1–100 characters), or a function of the request and response.
   * A route's `meterRoute({ eventName })` and a handler's `setRequestUsage(req, { eventName })` win over it.
   * @default 'api_requests'
   */
  eventName?: string | EventNameResolver;
  /**
   * Who pays. Called after the response has finished, so the middleware may be mounted before
   * authentication. Returning `undefined` (or `''`) leaves the request unbilled (`skipped.noCustomer`).
   * Never read the payer from a header or query parameter a client controls.
   * @default `req.user.stripeCustomerId`, then `res.locals.stripeCustomerId`
   */
  customer?: CustomerResolver;
  /**
   * The Stripe Connect account whose meters bill the request (its events go under that account's
   * `Stripe-Context`). Called after the response has finished, like `customer`; read it from what your
   * authentication established (the tenant of the API key), never from a header a client controls.
   * @default undefined (every request bills the platform's own meters)
   */
  account?: AccountResolver;
  /**
   * How much a request uses: a positive integer, or a (possibly async) function called after the
   * response has finished. A value of 0 bills nothing (`skipped.zeroValue`). A route's
   * `meterRoute({ value })` and a handler's `setRequestUsage(req, { value })` win over it.
   * @default 1
   */
  value?: MeterValue | ValueResolver;
  /**
   * Which finished requests count.
   * @default a 2xx status code
   */
  billIf?: BillIf;
  /**
   * Whether a request whose client disconnected before its response started (nothing sent yet) is
   * billed too; `billIf` then decides with the status set so far. A response that had started
   * (headers sent, a stream cut short) is billed either way, as `billIf` decides.
   * @default false (a client that left before the response started is not billed)
   */
  billAborted?: boolean;
  /**
   * How long, after a client disconnects, the handler may still end the response (`res.end()`,
   * `res.json()`…) to have the request billed as completed, with the value it set then. 0 turns
   * this off; at most 60000. `close()` and `flush()` wait for the grace of such requests.
   * @default 0
   */
  abortGraceMs?: number;
  /**
   * `'generated'`: every request gets a fresh identifier. `'idempotency-key'`: a request that carries
   * an `Idempotency-Key` header gets an identifier derived from customer, event name, method, route
   * pattern (`req.baseUrl` + `req.route.path`; the path when no route matched) and key, so a client's
   * retries of one operation bill once (within Stripe's 24-hour deduplication window) and a key
   * reused on another route or method bills again.
   * @default 'generated'
   */
  identifier?: IdentifierSource;
  /**
   * The header read when `identifier` is `'idempotency-key'`.
   * @default 'idempotency-key'
   */
  idempotencyKeyHeader?: string;
  /**
   * How long an async `customer` or `value` function may take before the request is given up and
   * reported to `onError` (nothing is billed for it).
   * @default 1000
   */
  resolveTimeoutMs?: number;
  /**
   * What `metering.ready()` does with Stripe's meters: `'warn'` logs problems, `'fail'` rejects, `'off'` skips the check.
   * @default 'warn'
   */
  verifyMeters?: VerifyMetersMode;
}

/**
 * The old name of `MeteringMiddlewareOptions`.
 * @deprecated Use `MeteringMiddlewareOptions` (`@metered/nestjs` has its own, different, `MeterUsageOptions`).
 */
export type MeterUsageOptions = MeteringMiddlewareOptions;

/** Per-route overrides, given to `meterRoute(options)`. */
export interface RouteMeteringOptions {
  /** The meter's `event_name` for this route; wins over the middleware's `eventName`. */
  eventName?: string | EventNameResolver;
  /** The amount billed for this route; wins over the middleware's `value`. */
  value?: MeterValue | ValueResolver;
}

/** Why a request was not billed. */
export interface SkippedCounts {
  /** Every skipped request: the sum of the counts below. */
  total: number;
  /** No customer could be resolved (unauthenticated). */
  noCustomer: number;
  /** `billIf` returned false (by default: a status outside 2xx). */
  notBillable: number;
  /** The client disconnected before the response started (and `billAborted` is false). */
  aborted: number;
  /** The route or handler opted out (`skipMetering()`, `skipRequestMetering(req)`). */
  skippedRoute: number;
  /** The resolved value was 0. */
  zeroValue: number;
  /** Another metering middleware had already taken charge of the request (mounted twice). */
  duplicate: number;
}

/** The middleware's counters; `seen = metered + skipped.total + errors + inProgress` at every moment. */
export interface MeteringStats {
  /** Requests that passed through the middleware. */
  seen: number;
  /** Requests handed to the reporter as one event each. */
  metered: number;
  /** Requests not billed, by reason. */
  skipped: SkippedCounts;
  /** Requests that could not be metered (a resolver threw or timed out, `report()` refused the event); each went to `onError`. */
  errors: number;
  /** Requests whose response has not finished yet, or whose customer and value are still being resolved. */
  inProgress: number;
}

/** The function `meterUsage()` returns: an Express middleware with its reporter and counters. */
export interface MeteringMiddleware {
  (req: Request, res: Response, next: NextFunction): void;
  /** The reporter events go to. */
  readonly reporter: MeterReporter;
  /** Whether the middleware created the reporter (and `close()` closes it). */
  readonly ownsReporter: boolean;
  /** A snapshot of the counters. */
  stats(): MeteringStats;
  /**
   * Resolves once every request whose response has finished is reported or skipped, and the
   * reporter has delivered (or failed, or dropped) every event reported so far.
   */
  flush(): Promise<void>;
  /**
   * Waits for requests whose response has finished to be reported, then closes the reporter if the
   * middleware owns it and resolves with its `CloseResult` (a reporter passed in is left to its
   * owner: resolves with undefined).
   */
  close(options?: CloseOptions): Promise<CloseResult | undefined>;
  /**
   * Checks Stripe's meters for the middleware's event name and every `meterRoute()` event name (plus `eventNames`)
   * as `verifyMeters` says: `'warn'` logs each problem, `'fail'` rejects with `MeterVerifyError` (code
   * `ERR_METER_VERIFY_FAILED`) listing them all. A middleware cannot hold up start-up: await this before `listen()`.
   */
  ready(options?: { eventNames?: readonly string[] }): Promise<VerifyMetersResult | undefined>;
}

/** Options of `meterErrorWebhook()`. */
export interface MeterErrorWebhookRouterOptions extends Omit<MeterErrorWebhookOptions, 'reporter'> {
  /** The reporter whose `onError` hears of rejected events (`metering.reporter`). */
  reporter: MeterReporter;
  /**
   * The path the router answers POSTs on.
   * @default '/stripe/meter-errors'
   */
  path?: string;
}

/** Options of `closeOnSignal(server, metering, options)`. */
export interface CloseOnSignalOptions {
  /**
   * The signals that start the shutdown. A second one, once it has started, gets Node's default
   * handling (the process ends at once) unless something else listens for it.
   * @default ['SIGTERM', 'SIGINT']
   */
  signals?: readonly NodeJS.Signals[];
  /**
   * How long requests in flight may take to finish once the server stops accepting connections;
   * after it, their connections are closed.
   * @default 10000
   */
  drainTimeoutMs?: number;
  /**
   * How long the reporter keeps delivering what is queued (`close({ timeoutMs })`); what is left
   * then goes to `onDrop` with reason `shutdown`.
   * @default 10000
   */
  closeTimeoutMs?: number;
  /**
   * Whether to end the process with `process.exit()` once metering is closed, for apps with other
   * handles (database pools, intervals) that would keep it alive.
   * @default false (the process exits by itself once nothing else holds it open)
   */
  exit?: boolean;
}

/** What a graceful shutdown did. */
export interface ShutdownResult {
  /** The signal that started it, or undefined when `shutdown()` was called. */
  readonly signal: NodeJS.Signals | undefined;
  /** Whether every request in flight finished within `drainTimeoutMs` (false: connections were closed on them). */
  readonly drained: boolean;
  /** What closing the reporter delivered, failed and dropped; undefined if closing it failed (reported to `onError`). */
  readonly metering: CloseResult | undefined;
}

/** What `closeOnSignal()` returns: the shutdown, to run by hand, and a way to stop listening. */
export interface GracefulShutdown {
  /** Runs the shutdown now (or returns the one under way): close the server, then metering. Never rejects. */
  shutdown(): Promise<ShutdownResult>;
  /** Stops listening for the signals, without shutting down. */
  remove(): void;
}
