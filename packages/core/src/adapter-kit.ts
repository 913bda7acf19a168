// Metering one finished request, decided here for every framework adapter; an adapter only answers for its request.
import type { ServerResponse } from 'node:http';
import type { MeterValue } from './adapter-options';
import { MeterAdapterError } from './errors';
import type { MeterReporter } from './meter-reporter';
import { redactSecrets } from './redact';
import { eventsOfRequest } from './request-events';
import type { RequestUsageEvent } from './request-events';
import { identifierFromIdempotencyKey, withTimeout } from './request-metering';
import { whenHandlerEnds } from './response-end';
import type { RequestMeteringState } from './request-metering';
import type { MeterEventInput } from './types';

/** How metering one request ended: metered, failed (reported to `onError`), or why it was not billed. */
export type RequestMeteringOutcome = 'metered' | 'error' | 'skippedRoute' | 'aborted' | 'notBillable' | 'noCustomer' | 'zeroValue';

/**
 * How a response had ended when metering looked at it: `'completed'` by the handler (before the
 * client left, or within the abort grace after), `'started'` (headers sent, then the client left),
 * or `'notStarted'` (the client left before anything was sent).
 */
export type ResponseEnding = 'completed' | 'started' | 'notStarted';

/**
 * What an adapter tells core about its requests: its resolved settings, and answers for one request
 * (`TRequest`: whatever the adapter needs to answer, e.g. Express's `req` and `res`). Answers may be
 * promises; each gets `resolveTimeoutMs` to settle.
 */
export interface RequestMeteringAdapter<TRequest> {
  /** Where events, and failures to meter, go. */
  readonly reporter: Pick<MeterReporter, 'report' | 'handleError'>;
  /** Whether a request whose client disconnected before its response started is billed too. */
  readonly billAborted: boolean;
  readonly resolveTimeoutMs: number;
  /** The lower-cased header holding a client's idempotency key, or undefined when identifiers are generated. */
  readonly idempotencyKeyHeader: string | undefined;
  /** The step a failure outside every answer is blamed on, in the message (`metering`, `interceptor`). */
  readonly internalStep: string;
  /** What the handler set with `setRequestUsage()`; read once, first, before anything async (it may be the request's own state, not a copy). */
  usage(request: TRequest): Readonly<RequestMeteringState>;
  /** Whether the request counts. */
  billIf(request: TRequest): unknown;
  /** Who pays: a Stripe customer id, or undefined / null / '' for no one. */
  customer(request: TRequest): unknown;
  /** The event name, unless the handler set one. */
  eventName(request: TRequest): string | Promise<string>;
  /** The value, unless the handler set one. */
  value(request: TRequest): MeterValue | Promise<MeterValue>;
  /** The request's headers, read for the idempotency key. */
  headers(request: TRequest): Readonly<Record<string, string | string[] | undefined>>;
  /**
   * The operation an idempotency key is scoped to: the method and the route the request matched
   * (`GET /v1/items/:id`, `POST ItemsController.create`), never ids from the URL. Read only for a
   * request that carries a key.
   */
  operation(request: TRequest): string;
  /** The event's dimensions; without this answer events carry none. */
  readonly dimensions?: (request: TRequest) => Readonly<Record<string, string>> | undefined;
  /**
   * The request's several events (a route billing several meters), unless the handler set its own;
   * undefined for the one configured event. Without this answer, only a handler sets several.
   */
  readonly events?: (request: TRequest) => readonly RequestUsageEvent[] | undefined | Promise<readonly RequestUsageEvent[] | undefined>;
  /** The Stripe Connect account (`acct_…`) billed for the request, or undefined for the platform; without this answer, the platform. */
  readonly account?: (request: TRequest) => unknown;
  /** The request as it reads in an error message ("GET /v1/search"); never its query, which may carry secrets. */
  describe(request: TRequest): string;
  /** Where a failure goes when `reporter.handleError()` itself throws; without it, nowhere. */
  readonly logFallback?: (line: string) => void;
}

/** Which step of metering a request failed, for the error message. */
type Step = 'billIf' | 'customer resolver' | 'account resolver' | 'eventName resolver' | 'value resolver' | 'report()';

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

function isZero(value: MeterValue): boolean {
  return value === 0 || value === 0n || value === '0';
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Thrown inside metering so that the step at fault is named once, where the failure is reported. */
class StepError extends Error {
  constructor(
    readonly step: string,
    override readonly cause: unknown,
  ) {
    super(message(cause));
  }
}

/**
 * Runs one of the adapter's answers, `answer(request)` with the adapter as `this`. A synchronous
 * result comes back as it is, so that the common case costs no promise, no microtask and no timer
 * (this runs once per request: docs/BENCHMARKS.md); a promise comes back wrapped in `timeoutMs`.
 * Failures carry the step's name to the message. The request is passed in rather than captured
 * in a closure: one allocation fewer per answer.
 */
function ask<TRequest, T>(name: Step, timeoutMs: number, thisArg: unknown, answer: (request: TRequest) => T | Promise<T>, request: TRequest): T | Promise<T> {
  let result: T | Promise<T>;
  try {
    result = answer.call(thisArg, request);
  } catch (error) {
    throw new StepError(name, error);
  }
  if (!isThenable(result)) return result;
  return withTimeout(() => result, timeoutMs, `the ${name}`).catch((error: unknown) => {
    throw new StepError(name, error);
  });
}

/**
 * Resolves true once `finished` settles (the handler ending its work after its client left), or
 * false after `graceMs` (at once for 0). The timer is ref'd, unlike the others here: the grace is
 * short and bounded, and a process shutting down must not exit while it waits to bill that work.
 *
 * @example
 * const ending = (await finishedWithin(handlerEnded, config.abortGraceMs)) ? 'completed' : 'notStarted';
 */
export function finishedWithin(finished: Promise<unknown>, graceMs: number): Promise<boolean> {
  if (graceMs <= 0) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), graceMs);
    const done = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    finished.then(done, done);
  });
}

/**
 * How a response ended once its connection closed: `'completed'` if the handler had ended it.
 * Otherwise its client left, after the headers were sent (`'started'`) or before (`'notStarted'`),
 * unless the handler still finishes within `graceMs`: `finishedWithinGrace()` (asked only then)
 * says whether it did. Synchronous unless there is a grace to wait for.
 *
 * @example
 * const ending = endingAtClose(res.writableEnded, res.headersSent, config.abortGraceMs, () => finishedWithin(handlerEnded, config.abortGraceMs));
 */
export function endingAtClose(
  ended: boolean,
  headersSent: boolean,
  graceMs: number,
  finishedWithinGrace: () => Promise<boolean>,
): ResponseEnding | Promise<ResponseEnding> {
  if (ended) return 'completed';
  const started: ResponseEnding = headersSent ? 'started' : 'notStarted';
  if (graceMs === 0) return started;
  return finishedWithinGrace().then((finished) => (finished ? 'completed' : started));
}

/**
 * How `res` ended once it is over (`whenResponseDone()`), for an adapter that cannot hear its
 * handler's own end: `'completed'` if it was ended, at once (nearly every response); otherwise its
 * client left first, and a handler that still ends the response (`res.end()`, so `res.send()` or
 * `reply.send()`) within `graceMs` has its work billed as completed (`whenHandlerEnds()`).
 *
 * @example
 * const ending = responseEnding(res, config.abortGraceMs);
 * if (typeof ending === 'string') bill(ending);
 * else void ending.then(bill);
 */
export function responseEnding(res: ServerResponse, graceMs: number): ResponseEnding | Promise<ResponseEnding> {
  if (res.writableEnded) return 'completed';
  return endingAtClose(false, res.headersSent, graceMs, () => {
    const handler = whenHandlerEnds(res);
    return finishedWithin(handler.ended, graceMs).finally(handler.stop);
  });
}

/**
 * Hands a failure to meter `request` to the reporter's `onError` as a `MeterAdapterError`
 * ("Could not meter GET /x: <what> failed: <why>"). Never throws.
 */
export function reportMeteringFailure<TRequest>(adapter: RequestMeteringAdapter<TRequest>, request: TRequest, what: string, cause: unknown): void {
  try {
    const error = new MeterAdapterError(`Could not meter ${adapter.describe(request)}: ${what} failed: ${message(cause)}`, cause);
    try {
      adapter.reporter.handleError(error);
    } catch (hookError) {
      adapter.logFallback?.(`${error.message} (and handleError threw: ${redactSecrets(message(hookError))})`);
    }
  } catch {
    // Nowhere is left to tell, and a metering failure never reaches the application.
  }
}

/**
 * Decides whether a finished request is billed, and reports it as one event dated `arrivedAt`.
 * A response that had started (headers sent) is billed even if its client left before the end: the
 * client received part of the work. One whose client left before it started is billed only with
 * `billAborted`. Never rejects: every failure goes to `reportMeteringFailure()` and ends as `'error'`.
 *
 * @example
 * const outcome = await meterRequest(adapter, { req, res }, arrivedAt, res.writableEnded ? 'completed' : 'notStarted');
 */
export async function meterRequest<TRequest>(
  adapter: RequestMeteringAdapter<TRequest>,
  request: TRequest,
  arrivedAt: number,
  ending: ResponseEnding,
): Promise<RequestMeteringOutcome> {
  return meterRequestNow(adapter, request, arrivedAt, ending);
}

/**
 * `meterRequest()`, settled at once when every answer is synchronous (the common case: the outcome
 * itself, no promise, no microtask), or a promise from the first answer that is one. Never throws
 * and never rejects.
 *
 * @example
 * const outcome = meterRequestNow(adapter, { req, res }, arrivedAt, 'completed');
 * if (typeof outcome === 'string') record(outcome);
 * else void outcome.then(record);
 */
export function meterRequestNow<TRequest>(
  adapter: RequestMeteringAdapter<TRequest>,
  request: TRequest,
  arrivedAt: number,
  ending: ResponseEnding,
): RequestMeteringOutcome | Promise<RequestMeteringOutcome> {
  return resume(meteringSteps(adapter, request, arrivedAt, ending), undefined, false);
}

type Steps = Generator<PromiseLike<unknown>, RequestMeteringOutcome, unknown>;

/**
 * Runs `steps` on from where it paused: synchronously while it asks for nothing, then once per
 * promise it yields, handing back that promise's value or its failure. The generator catches every
 * failure itself, so neither this nor its promise ever fails.
 */
function resume(steps: Steps, input: unknown, failed: boolean): RequestMeteringOutcome | Promise<RequestMeteringOutcome> {
  const next = failed ? steps.throw(input) : steps.next(input);
  if (next.done === true) return next.value;
  return Promise.resolve(next.value).then(
    (value) => resume(steps, value, false),
    (error: unknown) => resume(steps, error, true),
  );
}

/**
 * The decision itself, as a generator: each answer that is a promise is yielded and comes back
 * settled (`resume()`), so the same code serves requests whose answers are all synchronous without
 * a promise, and those with asynchronous resolvers with one per such answer.
 */
function* meteringSteps<TRequest>(adapter: RequestMeteringAdapter<TRequest>, request: TRequest, arrivedAt: number, ending: ResponseEnding): Steps {
  const timeoutMs = adapter.resolveTimeoutMs;
  try {
    // Read at once, before anything async: a handler's setRequestUsage() made before the response
    // ended counts, one made later does not (so usage() may hand over the request's own state).
    const usage = adapter.usage(request);
    const { skip, handedOver } = usage;
    let { events, eventName: eventNameSet, value: valueSet } = usage;
    if (skip === true) return 'skippedRoute';
    if (ending === 'notStarted' && !adapter.billAborted) return 'aborted';
    // eslint-disable-next-line @typescript-eslint/unbound-method -- ask() calls it with the adapter as `this`
    let billable = ask('billIf', timeoutMs, adapter, adapter.billIf, request);
    if (isThenable(billable)) billable = yield billable;
    if (!billable) return 'notBillable';

    // eslint-disable-next-line @typescript-eslint/unbound-method -- ask() calls it with the adapter as `this`
    let customerId = ask('customer resolver', timeoutMs, adapter, adapter.customer, request);
    if (isThenable(customerId)) customerId = yield customerId;
    // No payer (an anonymous request to a route free without an account) is not billed.
    if (customerId === undefined || customerId === null || customerId === '') return 'noCustomer';
    if (typeof customerId !== 'string') {
      throw new StepError('customer resolver', new TypeError(`returned ${typeof customerId}; expected a Stripe customer id string or undefined`));
    }

    let account = adapter.account === undefined ? undefined : ask('account resolver', timeoutMs, adapter, adapter.account, request);
    if (isThenable(account)) account = yield account;
    if (account !== undefined && account !== null && typeof account !== 'string') {
      throw new StepError('account resolver', new TypeError(`returned ${typeof account}; expected a connected account id (acct_…) or undefined`));
    }
    // No account (undefined, null, '') bills the platform's own meters.
    const connected = typeof account === 'string' && account !== '' ? account : undefined;
    const header = adapter.idempotencyKeyHeader;
    const keyHeader = header === undefined ? undefined : adapter.headers(request)[header];
    const idempotency = typeof keyHeader === 'string' && keyHeader.length > 0 ? { key: keyHeader, operation: adapter.operation(request) } : undefined;

    // Another adapter's route, metered here (it claimed the request first): what it handed over fills in
    // what the handler left unset, field by field, as that adapter's own route would have.
    if (handedOver !== undefined && events === undefined && (eventNameSet === undefined || valueSet === undefined)) {
      let given: unknown = ask('value resolver', timeoutMs, usage, handedOver, request);
      if (isThenable(given)) given = yield given;
      if (Array.isArray(given)) events = given as readonly RequestUsageEvent[];
      else if (typeof given === 'object' && given !== null) {
        const route = given as { eventName?: string; value?: MeterValue };
        eventNameSet ??= route.eventName;
        valueSet ??= route.value;
      }
    }

    let several: unknown = events ?? (adapter.events === undefined ? undefined : ask('value resolver', timeoutMs, adapter, adapter.events, request));
    if (isThenable(several)) several = yield several;
    if (several !== undefined) {
      const inputs = eventsOfRequest(several as readonly RequestUsageEvent[], { customerId, arrivedAt, idempotency, dimensions: adapter.dimensions?.(request), account: connected });
      if (inputs.length === 0) return 'zeroValue';
      // Every event is offered: one the reporter refuses does not cost the request its other meters.
      let refused: unknown;
      for (const input of inputs) {
        try {
          adapter.reporter.report(input);
        } catch (error) {
          refused ??= error;
        }
      }
      if (refused !== undefined) throw new StepError('report()', refused);
      return 'metered';
    }

    // eslint-disable-next-line @typescript-eslint/unbound-method -- ask() calls it with the adapter as `this`
    let eventName: unknown = eventNameSet ?? ask('eventName resolver', timeoutMs, adapter, adapter.eventName, request);
    if (isThenable(eventName)) eventName = yield eventName;
    // eslint-disable-next-line @typescript-eslint/unbound-method -- ask() calls it with the adapter as `this`
    let value: unknown = valueSet ?? ask('value resolver', timeoutMs, adapter, adapter.value, request);
    if (isThenable(value)) value = yield value;
    if (isZero(value as MeterValue)) return 'zeroValue';

    // Derived from customer, event name and operation too, so a client can only collapse its own
    // retries of one operation, never different requests that reuse a key.
    const identifier = idempotency === undefined ? undefined : identifierFromIdempotencyKey(customerId, eventName as string, idempotency.operation, idempotency.key);

    const event: MeterEventInput = { eventName: eventName as string, customerId, value: value as MeterValue, timestamp: arrivedAt, identifier };
    if (adapter.dimensions !== undefined) event.dimensions = adapter.dimensions(request);
    if (connected !== undefined) event.account = connected;
    try {
      adapter.reporter.report(event);
    } catch (error) {
      throw new StepError('report()', error);
    }
    return 'metered';
  } catch (error) {
    const failed = error instanceof StepError ? error : new StepError(adapter.internalStep, error);
    reportMeteringFailure(adapter, request, `the ${failed.step}`, failed.cause);
    return 'error';
  }
}
