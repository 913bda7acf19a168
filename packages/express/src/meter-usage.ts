// meterUsage(): the Express middleware that turns each handled request into one meter event.
import { MeterAdapterError, claimRequest, getRequestUsage, identifierFromIdempotencyKey, withTimeout } from '@metered/core';
import type { CloseOptions, CloseResult } from '@metered/core';
import type { NextFunction, Request, Response } from 'express';
import onFinished from 'on-finished';
import { resolveOptions } from './config';
import type { ResolvedOptions } from './config';
import { routeMeteringOf } from './route';
import type { MeterUsageOptions, MeterValue, MeteringMiddleware, MeteringStats, SkippedCounts } from './types';

type SkipReason = Exclude<keyof SkippedCounts, 'total' | 'duplicate'>;
type Outcome = 'metered' | 'error' | SkipReason;

/** Which step of metering a request failed, for the error message. */
type Step = 'billIf' | 'customer resolver' | 'eventName resolver' | 'value resolver' | 'report()' | 'metering';

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * A resolver's result: synchronous results are used as they are, so the common case costs no timer;
 * promises get `timeoutMs` to settle.
 */
async function resolveWithin<T>(result: T | Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return isThenable(result) ? withTimeout(() => result, timeoutMs, what) : result;
}

function isZero(value: MeterValue): boolean {
  return value === 0 || value === 0n || value === '0';
}

/** The request as it reads in an error message: method and path, never the query (it may carry secrets). */
function describe(req: Request): string {
  const url = typeof req.originalUrl === 'string' ? req.originalUrl : (req.url ?? '');
  const query = url.indexOf('?');
  return `${req.method} ${query === -1 ? url : url.slice(0, query)}`;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Thrown inside metering so that the step at fault is named once, in the catch. */
class StepError extends Error {
  constructor(
    readonly step: Step,
    override readonly cause: unknown,
  ) {
    super(message(cause));
  }
}

async function step<T>(name: Step, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw new StepError(name, error);
  }
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
 * Decides whether a finished request is billed, and reports it. Never rejects: every failure is
 * handed to the reporter's `onError` as a `MeterAdapterError` and counted.
 */
async function meterRequest(config: ResolvedOptions, req: Request, res: Response, arrivedAt: number, aborted: boolean): Promise<Outcome> {
  const { reporter, resolveTimeoutMs } = config;
  try {
    // Read before anything async: a handler's setRequestUsage() made before the response ended counts.
    const usage = getRequestUsage(req);
    if (usage.skip === true) return 'skippedRoute';
    if (aborted && !config.billAborted) return 'aborted';
    if (!(await step('billIf', () => config.billIf(req, res)))) return 'notBillable';

    const customerId: unknown = await step('customer resolver', () => resolveWithin(config.customer(req, res), resolveTimeoutMs, 'the customer resolver'));
    if (customerId === undefined || customerId === null || customerId === '') return 'noCustomer';
    if (typeof customerId !== 'string') {
      throw new StepError('customer resolver', new TypeError(`returned ${typeof customerId}; expected a Stripe customer id string or undefined`));
    }

    const route = routeMeteringOf(req);
    const eventName =
      usage.eventName ??
      (await step('eventName resolver', () => {
        const configured = route?.eventName ?? config.eventName;
        return typeof configured === 'function' ? configured(req, res) : configured;
      }));

    const value =
      usage.value ??
      (await step('value resolver', () => {
        const configured = route?.value ?? config.value;
        return typeof configured === 'function' ? resolveWithin(configured(req, res), resolveTimeoutMs, 'the value resolver') : configured;
      }));
    if (isZero(value)) return 'zeroValue';

    const idempotencyKey = config.idempotencyKeyHeader === undefined ? undefined : req.headers[config.idempotencyKeyHeader];
    // Derived from customer and event name too, so a client can only collapse its own retries.
    const identifier =
      typeof idempotencyKey === 'string' && idempotencyKey.length > 0 ? identifierFromIdempotencyKey(customerId, eventName, idempotencyKey) : undefined;

    await step('report()', () => reporter.report({ eventName, customerId, value, timestamp: arrivedAt, identifier }));
    return 'metered';
  } catch (error) {
    const failed = error instanceof StepError ? error : new StepError('metering', error);
    reporter.handleError(new MeterAdapterError(`Could not meter ${describe(req)}: the ${failed.step} failed: ${failed.message}`, failed.cause));
    return 'error';
  }
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
 * process.on('SIGTERM', () => server.close(() => void metering.close()));
 */
export function meterUsage(options: MeterUsageOptions): MeteringMiddleware {
  const config = resolveOptions(options);
  const { reporter } = config;
  const counts = emptyStats();
  const settling = new Set<Promise<void>>();

  function record(outcome: Outcome): void {
    counts.inProgress -= 1;
    if (outcome === 'metered') counts.metered += 1;
    else if (outcome === 'error') counts.errors += 1;
    else {
      counts.skipped[outcome] += 1;
      counts.skipped.total += 1;
    }
  }

  function onResponseDone(req: Request, res: Response, arrivedAt: number): void {
    // The handler ended the response before the connection went away; otherwise the client aborted.
    const aborted = !res.writableEnded;
    const work = meterRequest(config, req, res, arrivedAt, aborted).then(record, () => record('error'));
    settling.add(work);
    void work.finally(() => settling.delete(work));
  }

  function meterUsageMiddleware(req: Request, res: Response, next: NextFunction): void {
    counts.seen += 1;
    if (!claimRequest(req)) {
      counts.skipped.duplicate += 1;
      counts.skipped.total += 1;
      next();
      return;
    }
    counts.inProgress += 1;
    const arrivedAt = Date.now();
    try {
      // Registered before next(): nothing the handler does can finish the response unseen.
      onFinished(res, () => onResponseDone(req, res, arrivedAt));
    } catch (error) {
      record('error');
      reporter.handleError(new MeterAdapterError(`Could not meter ${describe(req)}: watching the response failed: ${message(error)}`, error));
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
  });
}
