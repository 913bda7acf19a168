// meterUsage(): the Express middleware that turns each handled request into one meter event.
import { claimRequest, meterRequest, meterRequestNow, releaseClaim, reportMeteringFailure, requestUsageOf, responseEnding, verifyAtStartup, whenResponseDone } from '@metered/core';
import type { CloseOptions, CloseResult, RequestMeteringAdapter, RequestMeteringOutcome, VerifyMetersResult } from '@metered/core';
import type { NextFunction, Request, Response } from 'express';
import { resolveOptions } from './config';
import type { ResolvedOptions } from './config';
import { routeEventNames, routeMeteringOf } from './route';
import type { MeterUsageOptions, MeteringMiddleware, MeteringStats } from './types';

/** One request, as core asks about it. */
interface Exchange {
  readonly req: Request;
  readonly res: Response;
}

/** A metered request: what core asks about, and when it arrived (one object per request, no closure). */
interface MeteredExchange extends Exchange {
  readonly arrivedAt: number;
}

/** The request's path, never its query (which may carry secrets). */
function pathOf(req: Request): string {
  const url = typeof req.originalUrl === 'string' ? req.originalUrl : (req.url ?? '');
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** The request as it reads in an error message: method and path. */
function describe(req: Request): string {
  return `${req.method} ${pathOf(req)}`;
}

/**
 * What an idempotency key is scoped to: the method and the route pattern the request matched
 * (`GET /v1/items/:id`, the router's mount path included), so one key reused on another route or
 * method bills again, while ids in the URL do not make a retry look new. A request no route
 * matched (a mounted handler) falls back to its path, which only ever narrows the scope.
 */
function operationOf(req: Request): string {
  // Express 4 also takes a RegExp or an array of patterns as a route's path.
  const pattern = (req as { route?: { path?: string | RegExp | Array<string | RegExp> } }).route?.path;
  if (pattern === undefined) return `${req.method} ${pathOf(req)}`;
  return `${req.method} ${req.baseUrl}${Array.isArray(pattern) ? pattern.map(String).join(',') : String(pattern)}`;
}

/** Core's questions, answered for Express: the options, then a route's `meterRoute()` overrides over them. */
function expressAdapter(config: ResolvedOptions): RequestMeteringAdapter<Exchange> {
  const { account } = config;
  return {
    reporter: config.reporter,
    billAborted: config.billAborted,
    resolveTimeoutMs: config.resolveTimeoutMs,
    idempotencyKeyHeader: config.idempotencyKeyHeader,
    internalStep: 'metering',
    usage: ({ req }) => requestUsageOf(req),
    billIf: ({ req, res }) => config.billIf(req, res),
    customer: ({ req, res }) => config.customer(req, res),
    // Left out without a resolver, so core skips the step on every request of a platform-only app.
    ...(account === undefined ? {} : { account: ({ req, res }: Exchange) => account(req, res) }),
    eventName: ({ req, res }) => {
      const configured = routeMeteringOf(req)?.eventName ?? config.eventName;
      return typeof configured === 'function' ? configured(req, res) : configured;
    },
    value: ({ req, res }) => {
      const configured = routeMeteringOf(req)?.value ?? config.value;
      return typeof configured === 'function' ? configured(req, res) : configured;
    },
    headers: ({ req }) => req.headers,
    operation: ({ req }) => operationOf(req),
    describe: ({ req }) => describe(req),
  };
}

function emptyStats(): MeteringStats {
  return {
    seen: 0,
    metered: 0,
    skipped: { total: 0, noCustomer: 0, notBillable: 0, aborted: 0, skippedRoute: 0, zeroValue: 0, duplicate: 0 },
    errors: 0,
    inProgress: 0,
  };
}

/**
 * Creates the Express middleware that bills each handled request as one Stripe meter event. It
 * calls `next()` at once and does its work after the response has finished, so it adds no latency
 * and a metering failure never reaches the response. Mount it once, app-wide, before or after
 * authentication.
 *
 * @example
 * const metering = meterUsage({
 *   reporter: { apiKey: process.env.STRIPE_SECRET_KEY! },
 *   customer: (_req, res) => res.locals.account?.stripeCustomerId,
 * });
 * app.use(metering);
 * app.get('/health', skipMetering(), health);
 * closeOnSignal(app.listen(3000), metering); // on SIGTERM/SIGINT: stop the server, then deliver what is queued
 */
export function meterUsage(options: MeterUsageOptions): MeteringMiddleware {
  const config = resolveOptions(options);
  const { reporter } = config;
  const adapter = expressAdapter(config);
  const counts = emptyStats();
  const settling = new Set<Promise<void>>();

  function record(outcome: RequestMeteringOutcome): void {
    counts.inProgress -= 1;
    if (outcome === 'metered') counts.metered += 1;
    else if (outcome === 'error') counts.errors += 1;
    else countSkip(outcome);
  }

  function countSkip(reason: keyof Omit<MeteringStats['skipped'], 'total'>): void {
    counts.skipped[reason] += 1;
    counts.skipped.total += 1;
  }

  /**
   * The request's metering is over: counted, and its claim out of core's registry once its response
   * ended (a claim left there is an entry the garbage collector visits until the request is collected,
   * bench/NOTES.md). A later mount is refused by `claimRequest(req, res)` for that ended response.
   */
  function settle(req: Request, res: Response, outcome: RequestMeteringOutcome): void {
    releaseClaim(req, res);
    record(outcome);
  }

  function onResponseDone(exchange: MeteredExchange): void {
    const { req, res, arrivedAt } = exchange;
    // Ended by the handler, or by a client that left after or before it started (core's rule, with the grace).
    const ending = responseEnding(res, config.abortGraceMs);
    // Every answer synchronous (the common case): the outcome at once, no promise to track.
    const metered = typeof ending === 'string' ? meterRequestNow(adapter, exchange, arrivedAt, ending) : ending.then((e) => meterRequest(adapter, exchange, arrivedAt, e));
    if (typeof metered === 'string') {
      settle(req, res, metered);
      return;
    }
    // One settle callback rather than then() plus finally(): two promises fewer per request.
    const work: Promise<void> = metered.then(
      (outcome) => {
        settling.delete(work);
        settle(req, res, outcome);
      },
      () => {
        settling.delete(work);
        settle(req, res, 'error');
      },
    );
    settling.add(work);
  }

  let toldLate = false;

  function meterUsageMiddleware(req: Request, res: Response, next: NextFunction): void {
    counts.seen += 1;
    if (!claimRequest(req, res)) {
      countSkip('duplicate');
      // Refused because its response was already sent: a mount reached after the route answered.
      if (res.writableEnded && !toldLate) {
        toldLate = true;
        reportMeteringFailure(adapter, { req, res }, 'claiming the request', new Error('its response had already been sent when this meterUsage() saw it, so it is not billed here (mount meterUsage() once, before the routes)'));
      }
      next();
      return;
    }
    counts.inProgress += 1;
    const exchange: MeteredExchange = { req, res, arrivedAt: Date.now() };
    try {
      // Registered before next(): nothing the handler does can finish the response unseen.
      whenResponseDone(res, onResponseDone, exchange);
    } catch (error) {
      record('error');
      reportMeteringFailure(adapter, { req, res }, 'watching the response', error);
    }
    next();
  }

  async function settled(): Promise<void> {
    await Promise.all([...settling]);
  }

  return Object.assign(meterUsageMiddleware, {
    reporter,
    ownsReporter: config.ownsReporter,
    stats(): MeteringStats {
      return { ...counts, skipped: { ...counts.skipped } };
    },
    async flush(): Promise<void> {
      await settled();
      await reporter.flush();
    },
    async close(closeOptions?: CloseOptions): Promise<CloseResult | undefined> {
      await settled();
      return config.ownsReporter ? reporter.close(closeOptions) : undefined;
    },
    ready(readyOptions?: { eventNames?: readonly string[] }): Promise<VerifyMetersResult | undefined> {
      const names = new Set([...(typeof config.eventName === 'string' ? [config.eventName] : []), ...routeEventNames(), ...(readyOptions?.eventNames ?? [])]);
      return verifyAtStartup(reporter, [...names], config.verifyMeters);
    },
  });
}
