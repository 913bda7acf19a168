// The metering of one request: one meter event per billable request, reported after the response is sent, never failing it.
import { DEFAULT_VALUE, billsByDefault, claimRequest, endingAtClose, finishedWithin, handOverRequestUsage, meterRequest, meterRequestNow, hasRequestUsage, releaseClaim, requestUsageOf, responseEnding, setRequestUsage, skipRequestMetering, whenResponseDone, withTimeout } from '@metered/core';
import type { RequestMeteringAdapter, ResponseEnding } from '@metered/core';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { IncomingMessage, ServerResponse } from 'node:http';
import { finalize, tap } from 'rxjs';
import type { Observable } from 'rxjs';
import type { RouteMetering } from './meter-usage.decorator';
import type { ValueResolver } from './types';
import { forgetPass } from './guard-passes';
import { InFlight } from './in-flight';
import type { InFlightEntry } from './in-flight';
import { RouteCache } from './route-cache';
import { resolveRouteMeters, staticMeters } from './route-meters';
import { METER_USAGE_METADATA, METERING_CONFIG, SKIP_METERING_METADATA } from './metering.constants';
import { defaultBillIf } from './metering.options';
import type { ResolvedMeteringConfig } from './metering.options';
import type { MeteringOutcome } from './types';

/** What the handler's Observable did, recorded as it happens. */
interface HandlerOutcome {
  /** It completed or errored: the handler's work is over (not merely unsubscribed from). */
  finished: boolean;
  failed: boolean;
  error: unknown;
  result: unknown;
}

/**
 * A request this interceptor meters: its handler's outcome, and the current run's end (`done`, resolved
 * by `settled`). An outer interceptor's retry starts a new run: both are replaced then.
 */
interface HandlerRun {
  readonly handler: HandlerOutcome;
  done: Promise<void>;
  settled: () => void;
}

/**
 * Resolves once the handler's latest run has settled: a run that an outer interceptor's retry started
 * while an earlier one was being waited for is waited for in turn.
 */
async function lastRunDone(run: HandlerRun): Promise<void> {
  let done: Promise<void>;
  do {
    done = run.done;
    await done;
  } while (done !== run.done);
}

/** One request to a metered route, as core asks about it. */
interface RouteExchange {
  readonly context: ExecutionContext;
  readonly route: RouteMetering;
  /** The framework's request (Fastify's wrapper, or Express's own). */
  readonly request: object;
  readonly rawRequest: IncomingMessage;
  readonly rawResponse: ServerResponse;
  readonly handler: HandlerOutcome;
}

/** A request metered from the guard, until its response is over; its own in-flight entry. */
export interface GuardedRequest extends RouteExchange, InFlightEntry {
  /** The framework's response (Fastify's reply, or Express's own), as Nest hands it to `status()`. */
  readonly response: object;
  /** Whether every guard let it through: set by the adapter's `status()`, which Nest calls only then. */
  passed: boolean;
  readonly arrivedAt: number;
}

const SKIPPED = Symbol('skipped');
/** What the handler did, as far as metering without an interceptor can tell: it ran (its guards let it through). */
const RAN: HandlerOutcome = Object.freeze({ finished: true, failed: false, error: undefined, result: undefined });
/** The metadata key `@UseInterceptors()` writes (Nest 11 and 12), read without importing Nest's internals. */
const INTERCEPTORS_METADATA = '__interceptors__';
/**
 * In-flight metering per module config: Nest creates one interceptor per module that applies it
 * (`@MeterUsage()` with a value function adds it to its route), and the module's own instance
 * waits for all of them on flush and shutdown.
 */
const IN_FLIGHT = new WeakMap<ResolvedMeteringConfig, InFlight>();

function inFlightOf(config: ResolvedMeteringConfig): InFlight {
  let inFlight = IN_FLIGHT.get(config);
  if (inFlight === undefined) {
    inFlight = new InFlight();
    IN_FLIGHT.set(config, inFlight);
  }
  return inFlight;
}
const METER_ALL: RouteMetering = Object.freeze({ eventName: undefined, value: undefined, dimensions: undefined });

/**
 * Nest hands interceptors the framework's request and response: Express's own objects, or Fastify's
 * wrappers around Node's. The exactly-once marker and the finish listener go on Node's objects, where
 * `@metered/express` and Express-style middleware (Fastify's middie) see the same ones.
 */
function nodeObject<T extends object>(frameworkObject: object): T {
  const raw = (frameworkObject as { raw?: unknown }).raw;
  return (typeof raw === 'object' && raw !== null ? raw : frameworkObject) as T;
}

// instanceof first: looking up a missing `raw` on Express's request and response (whose prototype
// Express swaps per request) cost ~0.8 µs per request by CPU profile (docs/BENCHMARKS.md).
function nodeRequest(request: object): IncomingMessage {
  return request instanceof IncomingMessage ? request : nodeObject<IncomingMessage>(request);
}

function nodeResponse(response: object): ServerResponse {
  return response instanceof ServerResponse ? (response as ServerResponse) : nodeObject<ServerResponse>(response);
}

/** Whether the route (or its controller) applies `MeterUsageInterceptor`, which then meters it. */
function appliesInterceptor(handler: object, controller: object): boolean {
  return [handler, controller].some((target) => {
    const interceptors = Reflect.getMetadata(INTERCEPTORS_METADATA, target) as unknown[] | undefined;
    return interceptors?.some((entry) => entry === MeterUsageInterceptor || entry instanceof MeterUsageInterceptor) === true;
  });
}

/** How the request ended, as `billIf` sees it. */
function outcomeOf({ rawResponse, handler }: RouteExchange): MeteringOutcome {
  return Object.freeze({
    statusCode: rawResponse.statusCode,
    error: handler.failed ? handler.error : undefined,
    result: handler.failed ? undefined : handler.result,
  });
}

/** `defaultBillIf()` on the outcome `outcomeOf()` would build, without building it. */
function billsExchangeByDefault({ rawResponse, handler }: RouteExchange): boolean {
  return billsByDefault(rawResponse.statusCode, handler.failed ? handler.error : undefined);
}

/** Core's questions, answered for Nest: the module's options, then the route's `@MeterUsage()` over them. */
function nestAdapter(config: ResolvedMeteringConfig, logger: Logger): RequestMeteringAdapter<RouteExchange> {
  const { account } = config;
  return {
    reporter: config.reporter,
    billAborted: config.billAborted,
    resolveTimeoutMs: config.resolveTimeoutMs,
    idempotencyKeyHeader: config.idempotencyKeyHeader,
    internalStep: 'interceptor',
    // What the handler set with setRequestUsage() on either object (Fastify's wrapper or Node's) wins;
    // Express has one object, and a Fastify wrapper seldom carries any.
    // Core reads it once, at once: the request's own state, not a copy, unless both objects carry one.
    usage: ({ request, rawRequest }) =>
      request === rawRequest || !hasRequestUsage(request)
        ? requestUsageOf(rawRequest)
        : { ...requestUsageOf(rawRequest), ...requestUsageOf(request) },
    // The default decided without building the outcome object it would read (one frozen object per request).
    billIf: config.billIf === defaultBillIf ? billsExchangeByDefault : (exchange) => config.billIf(exchange.context, outcomeOf(exchange)),
    customer: ({ context }) => config.customer(context),
    // Left out without a resolver, so core skips the step on every request of a platform-only app.
    ...(account === undefined ? {} : { account: ({ context }: RouteExchange) => account(context) }),
    eventName: ({ route }) => route.eventName ?? config.eventName,
    value: ({ context, route, handler }) => {
      const value = route.value;
      return typeof value === 'function' ? value(context, handler.failed ? undefined : handler.result) : (value ?? DEFAULT_VALUE);
    },
    headers: ({ rawRequest }) => rawRequest.headers,
    // The route's names, not its URL: ids in a path do not make a retry look like a new operation.
    operation: ({ context, rawRequest }) => `${rawRequest.method ?? ''} ${context.getClass().name}.${context.getHandler().name}`,
    dimensions: ({ route }) => route.dimensions,
    events: ({ context, route, handler }) => (route.meters === undefined ? undefined : resolveRouteMeters(route.meters, context, handler.failed ? undefined : handler.result)),
    // The route's names, not its URL: a URL may carry tokens in its query string.
    describe: ({ context }) => `a request to ${context.getClass().name}.${context.getHandler().name}`,
    logFallback: (line) => logger.error(line),
  };
}

/**
 * Meters requests to routes decorated with `@MeterUsage()` (and, with `meterAllRoutes`, every HTTP
 * route): through `intercept()` on the routes it is applied to (`@MeterUsage()` applies it where a
 * value reads the handler's result), and through `meterFromGuard()`, called by the module's global
 * `MeteringGuard`, everywhere else. It only records what the handler did while the request runs,
 * and does the rest once the response has been sent.
 */
@Injectable()
export class MeterUsageInterceptor implements NestInterceptor {
  private readonly logger = new Logger('MeteringModule');
  private readonly inFlight: InFlight;
  private readonly metering: RequestMeteringAdapter<RouteExchange>;
  /** Each route's metering, looked up once. */
  private readonly routes = new RouteCache<RouteMetering | typeof SKIPPED | undefined>();
  /** The same for the guard, which leaves routes carrying this interceptor to it (undefined for them). */
  private readonly guardedRoutes = new RouteCache<RouteMetering | typeof SKIPPED | undefined>();
  // Made once and handed to the caches and to whenResponseDone(): no closure per request.
  private readonly lookUpRouteOnce = (handler: object, controller: object): RouteMetering | typeof SKIPPED | undefined => this.lookUpRoute(handler, controller);
  private readonly lookUpGuardedRouteOnce = (handler: object, controller: object): RouteMetering | typeof SKIPPED | undefined =>
    appliesInterceptor(handler, controller) ? undefined : this.routes.get(handler, controller, this.lookUpRouteOnce);
  private readonly guardedResponseDone = (guarded: GuardedRequest): void => this.onGuardedResponseDone(guarded);
  /** Requests metered here, by their Node request: an outer interceptor's retry reaches intercept() again. */
  private readonly running = new WeakMap<object, HandlerRun>();

  constructor(
    @Inject(METERING_CONFIG) private readonly config: ResolvedMeteringConfig,
    private readonly reflector: Reflector,
  ) {
    this.metering = nestAdapter(config, this.logger);
    this.inFlight = inFlightOf(config);
  }

  /**
   * Meters a request without the interceptor pipeline, for `MeteringGuard`: called before the
   * route's other guards run, it claims the request and bills it once its response is over, if by
   * then its `passed` says every guard let it through (`passed` starts as `!recordsPasses`). For
   * routes whose value does not read the handler's result (the others carry this interceptor and
   * are left to it): `billIf` sees the status code, with no `error` or `result`. Returns the request
   * it meters, or undefined; never throws.
   */
  meterFromGuard(context: ExecutionContext, recordsPasses: boolean): GuardedRequest | undefined {
    try {
      const route = this.guardedRoutes.get(context.getHandler(), context.getClass(), this.lookUpGuardedRouteOnce);
      if (route === undefined) return undefined;
      // getArgByIndex, not switchToHttp(): that one assigns three new closures to the context on every call.
      const request = context.getArgByIndex<object>(0);
      const rawRequest = nodeRequest(request);
      if (route === SKIPPED) {
        skipRequestMetering(rawRequest);
        return undefined;
      }
      if (!claimRequest(rawRequest)) {
        this.handOver(rawRequest, route);
        return undefined;
      }
      const response = context.getArgByIndex<object>(1);
      const rawResponse = nodeResponse(response);
      // Tracked once its end is watched, as the interceptor's requests are: flush() and shutdown wait for a
      // request still running (a watch that threw would leave an entry nothing ends, and flush() waiting for
      // ever). The record is its own in-flight entry and what the response's end is called with.
      const guarded: GuardedRequest = {
        context,
        route,
        request,
        rawRequest,
        response,
        rawResponse,
        handler: RAN,
        passed: !recordsPasses,
        arrivedAt: Date.now(),
        waiters: undefined,
      };
      whenResponseDone(rawResponse, this.guardedResponseDone, guarded);
      return this.inFlight.add(guarded);
    } catch (error) {
      this.logger.error(`Could not watch a request to ${context.getClass().name}.${context.getHandler().name}: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  }

  /** Bills a request metered from the guard once its response is over, unless a later guard said no. */
  private onGuardedResponseDone(guarded: GuardedRequest): void {
    const ending = responseEnding(guarded.rawResponse, this.config.abortGraceMs);
    if (typeof ending === 'string') this.billGuarded(guarded, ending);
    else void ending.then((e) => this.billGuarded(guarded, e));
  }

  private billGuarded(guarded: GuardedRequest, ending: ResponseEnding): void {
    // A guard after ours that said no: Nest answered with its exception, and nothing is billed.
    if (!guarded.passed) {
      forgetPass(guarded.response);
      this.endGuarded(guarded);
      return;
    }
    // Settled at once when every answer is synchronous: no promise, no closure (never rejects).
    const outcome = meterRequestNow(this.metering, guarded, guarded.arrivedAt, ending);
    if (typeof outcome === 'string') this.endGuarded(guarded);
    else void outcome.then(() => this.endGuarded(guarded));
  }

  /**
   * The request's metering is over: its claim leaves core's registry, where every entry left is one
   * the garbage collector visits until the request is collected (~7% of a Nest-on-Fastify hello
   * world's throughput, bench/NOTES.md), and flush() stops waiting for it. Only here, on the guard's
   * path: a route with the interceptor keeps its claim for the request's lifetime.
   */
  private endGuarded(guarded: GuardedRequest): void {
    releaseClaim(guarded.rawRequest, guarded.rawResponse);
    this.inFlight.end(guarded);
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const route = this.routeOf(context);
    if (route === undefined) return next.handle();

    const request = context.getArgByIndex<object>(0);
    const rawRequest = nodeRequest(request);
    if (route === SKIPPED) {
      // An explicit opt-out holds for any other adapter metering this request too (@metered/express).
      skipRequestMetering(rawRequest);
      return next.handle();
    }
    // An interceptor outside this one that subscribes again (rxjs retry()) calls intercept() again for
    // the same request: the handler runs again, and the run that answers is the one billed (or not).
    const running = this.running.get(rawRequest);
    if (running !== undefined) return this.recorded(next, running);
    if (!claimRequest(rawRequest)) {
      // Someone else (@metered/express, a second MeteringModule) already meters this request.
      return this.handOver(rawRequest, route) ? next.handle() : this.handOverFromResult(rawRequest, route, context, next);
    }
    const rawResponse = nodeResponse(context.getArgByIndex<object>(1));

    const handler: HandlerOutcome = { finished: false, failed: false, error: undefined, result: undefined };
    const run: HandlerRun = { handler, done: Promise.resolve(), settled: () => undefined };
    this.running.set(rawRequest, run);
    // Listening before the handler runs, so a response sent synchronously is not missed. Ended
    // (by the handler) before the connection went away means completed; otherwise the client aborted.
    // Core's watch, as the guard's path has it: it also sees a pipelined response whose connection goes
    // while it waits its turn, and an HTTP/2 stream cancelled before this ran (on-finished saw neither).
    const responseDone = new Promise<boolean>((resolve) => {
      whenResponseDone(rawResponse, () => resolve(rawResponse.writableEnded));
    });

    const arrivedAt = Date.now();
    const exchange: RouteExchange = { context, route, request, rawRequest, rawResponse, handler };
    // Never rejects: core hands every failure to the reporter's onError.
    this.inFlight.track(
      responseDone
        .then((ended) => this.endingOf(ended, rawResponse, run))
        .then((ending) => meterRequest(this.metering, exchange, arrivedAt, ending))
        .finally(() => this.running.delete(rawRequest)),
    );

    return this.recorded(next, run);
  }

  /**
   * Runs the handler, recording its outcome from a clean one. Only records; an Observable (SSE, a
   * streamed result) settles once, on complete, error or unsubscribe.
   */
  private recorded(next: CallHandler, run: HandlerRun): Observable<unknown> {
    const { handler } = run;
    run.done = new Promise<void>((resolve) => {
      run.settled = resolve;
    });
    const settled = run.settled;
    handler.finished = false;
    handler.failed = false;
    handler.error = undefined;
    handler.result = undefined;
    return next.handle().pipe(
      tap({
        next: (value: unknown) => {
          handler.result = value;
        },
        error: (error: unknown) => {
          handler.finished = true;
          handler.failed = true;
          handler.error = error;
        },
        complete: () => {
          handler.finished = true;
        },
      }),
      finalize(settled),
    );
  }

  /**
   * Resolves once every request being metered has been reported (or skipped, or given up) and the
   * reporter has delivered, failed or dropped every event reported so far. For tests and manual
   * checkpoints; a request still running is waited for.
   */
  async flush(): Promise<void> {
    await this.inFlight.settled();
    await this.config.reporter.flush();
  }

  /**
   * Resolves once every request being metered has been reported or given up, or after `timeoutMs`
   * (false then). The module calls it on shutdown, before the reporter is flushed or closed.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return true;
    try {
      await withTimeout(() => this.inFlight.settled(), timeoutMs, 'requests being metered');
      return true;
    } catch {
      return false;
    }
  }

  /**
   * How the response ended. Ended by the time its connection closed: completed, once the handler
   * has settled too (a stream's last value is its result). Otherwise the client left, after or
   * before the response started; a handler that still finishes within `abortGraceMs` has its work
   * billed as completed.
   */
  private async endingOf(ended: boolean, rawResponse: ServerResponse, run: HandlerRun): Promise<ResponseEnding> {
    const { handler } = run;
    if (ended) await lastRunDone(run);
    const graceMs = this.config.abortGraceMs;
    // A run also ends on unsubscribe (Nest drops an SSE stream whose client left): only completing or failing is finishing.
    return endingAtClose(ended, rawResponse.headersSent, graceMs, () => finishedWithin(lastRunDone(run), graceMs).then(() => handler.finished));
  }

  /**
   * Tells the adapter that claimed the request which meter and value this route bills, when that
   * can be said up front; false when a value is a function (of the handler's result): see
   * `handOverFromResult()`.
   */
  private handOver(rawRequest: IncomingMessage, route: RouteMetering): boolean {
    if (route.meters !== undefined) {
      const known = staticMeters(route.meters);
      if (known !== undefined) setRequestUsage(rawRequest, known);
      return known !== undefined;
    }
    if (typeof route.value === 'function') return false;
    setRequestUsage(rawRequest, { eventName: route.eventName, value: route.value });
    return true;
  }

  /**
   * The same for a route whose value reads the handler's result: the result is kept as the handler
   * answers (nothing else runs on the response's path), and the value functions run when the
   * adapter that claimed the request bills it, after the response, as they would here.
   */
  private handOverFromResult(rawRequest: IncomingMessage, route: RouteMetering, context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const handler = { failed: false, result: undefined as unknown };
    handOverRequestUsage(rawRequest, () => {
      const result = handler.failed ? undefined : handler.result;
      if (route.meters !== undefined) return resolveRouteMeters(route.meters, context, result);
      const value = (route.value as ValueResolver<unknown>)(context, result);
      return Promise.resolve(value).then((v) => ({ eventName: route.eventName, value: v }));
    });
    return next.handle().pipe(
      tap({
        next: (result: unknown) => {
          handler.result = result;
        },
        error: () => {
          handler.failed = true;
        },
      }),
    );
  }

  /**
   * The route's metering, `SKIPPED` for `@SkipMetering()`, or undefined when it is not metered; a
   * method's decorators win over its controller's.
   */
  private routeOf(context: ExecutionContext): RouteMetering | typeof SKIPPED | undefined {
    return this.routes.get(context.getHandler(), context.getClass(), this.lookUpRouteOnce);
  }

  private lookUpRoute(handler: object, controller: object): RouteMetering | typeof SKIPPED | undefined {
    // What the caches were given: ExecutionContext's getHandler() and getClass().
    const levels = [handler, controller] as Array<ReturnType<ExecutionContext['getHandler']>>;
    for (const target of levels) {
      if (this.reflector.get<boolean | undefined>(SKIP_METERING_METADATA, target) === true) return SKIPPED;
      const metering = this.reflector.get<RouteMetering | undefined>(METER_USAGE_METADATA, target);
      if (metering !== undefined) return metering;
    }
    return this.config.meterAllRoutes ? METER_ALL : undefined;
  }
}
