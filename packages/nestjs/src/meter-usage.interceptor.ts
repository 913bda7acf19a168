// The global interceptor: one meter event per billable request, reported after the response is sent, never failing it.
import {
  MeterAdapterError,
  claimRequest,
  getRequestUsage,
  identifierFromIdempotencyKey,
  redactSecrets,
  setRequestUsage,
  skipRequestMetering,
  withTimeout,
} from '@metered/core';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { CallHandler, ExecutionContext, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import onFinished from 'on-finished';
import { finalize, tap } from 'rxjs';
import type { Observable } from 'rxjs';
import type { RouteMetering } from './meter-usage.decorator';
import { METER_USAGE_METADATA, METERING_CONFIG, SKIP_METERING_METADATA } from './metering.constants';
import { DEFAULT_VALUE } from './metering.options';
import type { ResolvedMeteringConfig } from './metering.options';
import type { MeteringOutcome, MeterValue } from './types';

/** What the handler's Observable did, recorded as it happens. */
interface HandlerOutcome {
  failed: boolean;
  error: unknown;
  result: unknown;
}

const SKIPPED = Symbol('skipped');
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

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Which step of metering a request failed, for the error message. */
type Step = 'billIf' | 'customer resolver' | 'value resolver' | 'report()' | 'interceptor';

/** Thrown inside metering so that the step at fault is named once, where the failure is reported. */
class StepError extends Error {
  constructor(
    readonly step: Step,
    override readonly cause: unknown,
  ) {
    super(message(cause));
  }
}

function isZero(value: MeterValue): boolean {
  return value === 0 || value === 0n || value === '0';
}

/**
 * Meters requests to routes decorated with `@MeterUsage()` (and, with `meterAllRoutes`, every HTTP
 * route). Registered globally by `MeteringModule`; it only records what the handler did while the
 * request runs, and does the rest once the response has been sent.
 */
@Injectable()
export class MeterUsageInterceptor implements NestInterceptor {
  private readonly logger = new Logger('MeteringModule');
  private readonly inProgress = new Set<Promise<void>>();

  constructor(
    @Inject(METERING_CONFIG) private readonly config: ResolvedMeteringConfig,
    private readonly reflector: Reflector,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const route = this.routeOf(context);
    if (route === undefined) return next.handle();

    const http = context.switchToHttp();
    const request = http.getRequest<object>();
    const rawRequest = nodeObject<IncomingMessage>(request);
    if (route === SKIPPED) {
      // An explicit opt-out holds for any other adapter metering this request too (@metered/express).
      skipRequestMetering(rawRequest);
      return next.handle();
    }
    if (!claimRequest(rawRequest)) {
      // Someone else (@metered/express, a second MeteringModule) already meters this request.
      this.handOver(rawRequest, route);
      return next.handle();
    }
    const rawResponse = nodeObject<ServerResponse>(http.getResponse<object>());

    const handler: HandlerOutcome = { failed: false, error: undefined, result: undefined };
    let handlerSettled!: () => void;
    const handlerDone = new Promise<void>((resolve) => {
      handlerSettled = resolve;
    });
    // Listening before the handler runs, so a response sent synchronously is not missed. Ended
    // (by the handler) before the connection went away means completed; otherwise the client aborted.
    const responseDone = new Promise<boolean>((resolve) => {
      onFinished(rawResponse, () => resolve(rawResponse.writableEnded));
    });

    const arrivedAt = Date.now();
    const work = Promise.all([handlerDone, responseDone])
      .then(([, completed]) => this.meter(context, route, request, rawRequest, rawResponse, handler, arrivedAt, !completed))
      .catch((error: unknown) => this.reportFailure(context, error));
    this.track(work);

    // Only records; an Observable (SSE, a streamed result) settles once, on complete, error or unsubscribe.
    return next.handle().pipe(
      tap({
        next: (value: unknown) => {
          handler.result = value;
        },
        error: (error: unknown) => {
          handler.failed = true;
          handler.error = error;
        },
      }),
      finalize(() => handlerSettled()),
    );
  }

  /**
   * Resolves once every request being metered has been reported (or skipped, or given up) and the
   * reporter has delivered, failed or dropped every event reported so far. For tests and manual
   * checkpoints; a request still running is waited for.
   */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.inProgress]);
    await this.config.reporter.flush();
  }

  /**
   * Resolves once every request being metered has been reported or given up, or after `timeoutMs`
   * (false then). The module calls it on shutdown, before the reporter is flushed or closed.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.inProgress.size === 0) return true;
    try {
      await withTimeout(() => Promise.allSettled([...this.inProgress]), timeoutMs, 'requests being metered');
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Tells the adapter that claimed the request which meter and value this route bills, when that
   * can be said up front: a value function runs after the response, too late for it.
   */
  private handOver(rawRequest: IncomingMessage, route: RouteMetering): void {
    if (typeof route.value === 'function') return;
    setRequestUsage(rawRequest, { eventName: route.eventName, value: route.value });
  }

  /**
   * The route's metering, `SKIPPED` for `@SkipMetering()`, or undefined when it is not metered; a
   * method's decorators win over its controller's.
   */
  private routeOf(context: ExecutionContext): RouteMetering | typeof SKIPPED | undefined {
    const levels = [context.getHandler(), context.getClass()];
    for (const target of levels) {
      if (this.reflector.get<boolean | undefined>(SKIP_METERING_METADATA, target) === true) return SKIPPED;
      const metering = this.reflector.get<RouteMetering | undefined>(METER_USAGE_METADATA, target);
      if (metering !== undefined) return metering;
    }
    return this.config.meterAllRoutes ? METER_ALL : undefined;
  }

  private async meter(
    context: ExecutionContext,
    route: RouteMetering,
    request: object,
    rawRequest: IncomingMessage,
    rawResponse: ServerResponse,
    handler: HandlerOutcome,
    arrivedAt: number,
    aborted: boolean,
  ): Promise<void> {
    // What the handler set with setRequestUsage() on either object (Fastify's wrapper or Node's) wins.
    const usage = { ...getRequestUsage(rawRequest), ...getRequestUsage(request) };
    if (usage.skip === true) return;
    if (aborted && !this.config.billAborted) return;

    const outcome: MeteringOutcome = Object.freeze({
      statusCode: rawResponse.statusCode,
      error: handler.failed ? handler.error : undefined,
      result: handler.failed ? undefined : handler.result,
    });
    if (!(await this.step('billIf', () => this.config.billIf(context, outcome)))) return;

    const customerId: unknown = await this.step('customer resolver', () => this.config.customer(context));
    // No payer (an anonymous request to a route free without an account) is not billed, as in @metered/express.
    if (customerId === undefined || customerId === null || customerId === '') return;
    if (typeof customerId !== 'string') {
      throw new StepError('customer resolver', new TypeError(`returned ${typeof customerId}; expected a Stripe customer id string or undefined`));
    }

    const resolver = route.value;
    const value =
      usage.value ??
      (typeof resolver === 'function' ? await this.step('value resolver', () => resolver(context, outcome.result)) : (resolver ?? DEFAULT_VALUE));
    if (isZero(value)) return;

    const eventName = usage.eventName ?? route.eventName ?? this.config.eventName;
    const identifier = this.identifierFor(rawRequest, customerId, eventName);
    await this.step('report()', () =>
      this.config.reporter.report({ eventName, customerId, value, timestamp: arrivedAt, identifier, dimensions: route.dimensions }),
    );
  }

  private identifierFor(rawRequest: IncomingMessage, customerId: string, eventName: string): string | undefined {
    const header = this.config.idempotencyKeyHeader;
    if (header === undefined) return undefined;
    const key = rawRequest.headers[header];
    return typeof key === 'string' && key.length > 0 ? identifierFromIdempotencyKey(customerId, eventName, key) : undefined;
  }

  /**
   * Runs one user-supplied step. A synchronous result is used as it is (no timer in the common case);
   * a promise gets `resolveTimeoutMs` to settle. Failures carry the step's name to the error message.
   */
  private async step<T>(name: Step, fn: () => T | Promise<T>): Promise<T> {
    try {
      const result = fn();
      return isThenable(result) ? await withTimeout(() => result, this.config.resolveTimeoutMs, `the ${name}`) : result;
    } catch (error) {
      throw new StepError(name, error);
    }
  }

  /** Every failure goes to the reporter's onError/logger; none ever reaches the response, which is already sent. */
  private reportFailure(context: ExecutionContext, failure: unknown): void {
    const failed = failure instanceof StepError ? failure : new StepError('interceptor', failure);
    // The route's names, not its URL: a URL may carry tokens in its query string.
    const route = `${context.getClass().name}.${context.getHandler().name}`;
    const error = new MeterAdapterError(`Could not meter a request to ${route}: the ${failed.step} failed: ${failed.message}`, failed.cause);
    try {
      this.config.reporter.handleError(error);
    } catch (hookError) {
      this.logger.error(`${error.message} (and handleError threw: ${redactSecrets(message(hookError))})`);
    }
  }

  private track(work: Promise<void>): void {
    this.inProgress.add(work);
    void work.finally(() => this.inProgress.delete(work));
  }
}
