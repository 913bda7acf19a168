// Unit tests of MeterUsageInterceptor with a fake reporter and hand-driven request/response objects.
import 'reflect-metadata';
import { EventEmitter } from 'node:events';
import { claimRequest, getRequestUsage, identifierFromIdempotencyKey, MeterAdapterError, setRequestUsage, skipRequestMetering } from '@metered/core';
import type { MeterError, MeterEventInput } from '@metered/core';
import { Logger } from '@nestjs/common';
import type { CallHandler, ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { lastValueFrom, NEVER, of, Subject, throwError } from 'rxjs';
import type { Observable } from 'rxjs';
import { MeterUsage, MeterUsageInterceptor, SkipMetering } from '../src';
import type { MeteringModuleOptions } from '../src';
import { resolveMeteringOptions } from '../src/metering.options';

/** Records what it is given; `report()` and `handleError()` can be made to throw. */
class FakeReporter {
  readonly reported: MeterEventInput[] = [];
  readonly errors: MeterError[] = [];
  reportThrows: Error | undefined;
  handleErrorThrows: Error | undefined;

  report(input: MeterEventInput): string {
    if (this.reportThrows) throw this.reportThrows;
    this.reported.push(input);
    return `id_${this.reported.length}`;
  }

  handleError(error: MeterError): void {
    if (this.handleErrorThrows) throw this.handleErrorThrows;
    this.errors.push(error);
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<{ delivered: number; failed: number; dropped: number }> {
    return Promise.resolve({ delivered: 0, failed: 0, dropped: 0 });
  }
}

@MeterUsage('class_event')
class MeteredController {
  plain(): void {}

  @MeterUsage('method_event', { value: 5, dimensions: { tier: 'pro' } })
  special(): void {}

  @SkipMetering()
  skipped(): void {}

  @MeterUsage({ value: (_context, result: { tokens: number }) => result.tokens })
  fromResult(): void {}

  @MeterUsage('slow_event', { value: () => new Promise<number>(() => undefined) })
  slow(): void {}
}

class PlainController {
  route(): void {}
}

@SkipMetering()
class SkippedController {
  route(): void {}
}

/** A Node-like request/response pair whose finish and abort the test drives (the events a Node ≥ 20 response emits). */
function exchange(options: { user?: object; headers?: Record<string, string>; fastify?: boolean } = {}) {
  const socket = Object.assign(new EventEmitter(), { writable: true });
  const rawRequest = Object.assign(new EventEmitter(), { method: 'GET', headers: options.headers ?? {}, user: options.user ?? { stripeCustomerId: 'cus_1' } });
  const rawResponse = Object.assign(new EventEmitter(), { statusCode: 200, headersSent: false, finished: false, writableEnded: false, socket, locals: {} });
  // Fastify hands interceptors wrappers that keep Node's objects under `raw`.
  const request = options.fastify ? { raw: rawRequest, headers: rawRequest.headers, user: rawRequest.user } : rawRequest;
  const response = options.fastify ? { raw: rawResponse } : rawResponse;
  return {
    request,
    rawRequest,
    rawResponse,
    response,
    finish(statusCode = 200): void {
      rawResponse.statusCode = statusCode;
      rawResponse.finished = true;
      rawResponse.writableEnded = true;
      rawResponse.emit('finish');
      // As a Node ≥ 20 response does: 'close' after 'finish', always.
      rawResponse.emit('close');
    },
    /** Sends the headers, as an SSE stream does before its first event. */
    start(): void {
      rawResponse.headersSent = true;
    },
    /** The client leaves: its connection closes, and with it the response, unfinished. */
    abort(): void {
      socket.emit('close');
      rawResponse.emit('close');
    },
  };
}

type Exchange = ReturnType<typeof exchange>;

function contextFor(ex: Exchange, controller: new () => object, method: string): ExecutionContext {
  const handler = (controller.prototype as Record<string, () => void>)[method]!;
  return new ExecutionContextHost([ex.request, ex.response, () => undefined], controller, handler);
}

function handlerReturning(source: Observable<unknown>): CallHandler {
  return { handle: () => source };
}

let reporter: FakeReporter;

function interceptorWith(options: Partial<MeteringModuleOptions> = {}): MeterUsageInterceptor {
  return new MeterUsageInterceptor(resolveMeteringOptions({ reporter: reporter as never, ...options }), new Reflector());
}

/** Runs one request through the interceptor: handler result, then the response's finish. */
async function run(
  interceptor: MeterUsageInterceptor,
  controller: new () => object,
  method: string,
  source: Observable<unknown> = of({ ok: true }),
  ex: Exchange = exchange(),
  statusCode = 200,
): Promise<unknown> {
  const output = lastValueFrom(interceptor.intercept(contextFor(ex, controller, method), handlerReturning(source)));
  const result = await output.catch((error: unknown) => error);
  ex.finish(statusCode);
  await interceptor.flush();
  return result;
}

beforeEach(() => {
  reporter = new FakeReporter();
});

afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
});

describe('MeterUsageInterceptor', () => {
  it('reports nothing until the response has finished, then one event for the authenticated customer', async () => {
    const interceptor = interceptorWith();
    const ex = exchange();
    const before = Date.now();
    const result = await lastValueFrom(interceptor.intercept(contextFor(ex, MeteredController, 'plain'), handlerReturning(of({ ok: 1 }))));
    const after = Date.now();
    expect(result).toEqual({ ok: 1 });
    await Promise.resolve();
    expect(reporter.reported).toEqual([]);

    ex.finish();
    await interceptor.flush();
    expect(reporter.reported).toEqual([{ eventName: 'class_event', customerId: 'cus_1', value: 1, timestamp: expect.any(Number), identifier: undefined, dimensions: undefined }]);
    // The event is dated when the request arrived, not when it was reported.
    expect(reporter.reported[0]!.timestamp).toBeGreaterThanOrEqual(before);
    expect(reporter.reported[0]!.timestamp).toBeLessThanOrEqual(after);
  });

  it("lets a method's decorators win over its controller's", async () => {
    const interceptor = interceptorWith();
    await run(interceptor, MeteredController, 'special');
    await run(interceptor, MeteredController, 'skipped');
    expect(reporter.reported).toEqual([expect.objectContaining({ eventName: 'method_event', value: 5, dimensions: { tier: 'pro' } })]);
  });

  it('meters undecorated routes only with meterAllRoutes, and never a skipped controller', async () => {
    await run(interceptorWith(), PlainController, 'route');
    expect(reporter.reported).toEqual([]);

    const meterAll = interceptorWith({ meterAllRoutes: true, eventName: 'everything' });
    await run(meterAll, PlainController, 'route');
    await run(meterAll, SkippedController, 'route');
    expect(reporter.reported).toEqual([expect.objectContaining({ eventName: 'everything', value: 1 })]);
  });

  it("computes the value from the handler's result", async () => {
    await run(interceptorWith(), MeteredController, 'fromResult', of({ tokens: 42 }));
    expect(reporter.reported).toEqual([expect.objectContaining({ eventName: 'api_requests', value: 42 })]);
  });

  it('bills a stream once, when it completes, with its last value', async () => {
    const interceptor = interceptorWith();
    const ex = exchange();
    const stream = new Subject<{ tokens: number }>();
    const seen: unknown[] = [];
    interceptor.intercept(contextFor(ex, MeteredController, 'fromResult'), handlerReturning(stream)).subscribe((value) => seen.push(value));
    stream.next({ tokens: 1 });
    stream.next({ tokens: 2 });
    ex.finish();
    await Promise.resolve();
    expect(reporter.reported).toEqual([]);
    stream.complete();
    await interceptor.flush();
    expect(seen).toEqual([{ tokens: 1 }, { tokens: 2 }]);
    expect(reporter.reported).toEqual([expect.objectContaining({ value: 2 })]);
  });

  it('does not bill a stream the client walked away from', async () => {
    const interceptor = interceptorWith();
    const ex = exchange();
    const subscription = interceptor.intercept(contextFor(ex, MeteredController, 'plain'), handlerReturning(NEVER)).subscribe();
    ex.abort();
    subscription.unsubscribe();
    await interceptor.flush();
    expect(reporter.reported).toEqual([]);
    expect(reporter.errors).toEqual([]);
  });

  it('bills an aborted request with billAborted', async () => {
    const interceptor = interceptorWith({ billAborted: true });
    const ex = exchange();
    await lastValueFrom(interceptor.intercept(contextFor(ex, MeteredController, 'plain'), handlerReturning(of(1))));
    ex.abort();
    await interceptor.flush();
    expect(reporter.reported).toHaveLength(1);
  });

  it('bills a stream cut short after its headers were sent, with its last value (a started response is never free)', async () => {
    const interceptor = interceptorWith();
    const ex = exchange();
    const stream = new Subject<{ tokens: number }>();
    const subscription = interceptor.intercept(contextFor(ex, MeteredController, 'fromResult'), handlerReturning(stream)).subscribe();
    ex.start();
    stream.next({ tokens: 4 });
    ex.abort();
    subscription.unsubscribe();
    await interceptor.flush();
    expect(reporter.reported).toEqual([expect.objectContaining({ value: 4 })]);
  });

  it('does not bill a handler that finishes after its client left before the response started, by default', async () => {
    const interceptor = interceptorWith();
    const ex = exchange();
    const work = new Subject<{ tokens: number }>();
    interceptor.intercept(contextFor(ex, MeteredController, 'fromResult'), handlerReturning(work)).subscribe();
    ex.abort();
    work.next({ tokens: 6 });
    work.complete();
    await interceptor.flush();
    expect(reporter.reported).toEqual([]);
  });

  it('with abortGraceMs, bills the result of a handler that finishes after its client left', async () => {
    const interceptor = interceptorWith({ abortGraceMs: 5000 });
    const ex = exchange();
    const work = new Subject<{ tokens: number }>();
    interceptor.intercept(contextFor(ex, MeteredController, 'fromResult'), handlerReturning(work)).subscribe();
    ex.abort();
    await Promise.resolve();
    work.next({ tokens: 6 });
    work.complete();
    await interceptor.flush();
    expect(reporter.reported).toEqual([expect.objectContaining({ value: 6 })]);
  });

  it('with abortGraceMs, gives up on a handler that does not finish within it', async () => {
    jest.useFakeTimers();
    const interceptor = interceptorWith({ abortGraceMs: 300 });
    const ex = exchange();
    const work = new Subject<{ tokens: number }>();
    interceptor.intercept(contextFor(ex, MeteredController, 'fromResult'), handlerReturning(work)).subscribe();
    ex.abort();
    let decided = false;
    const flushed = interceptor.flush().then(() => {
      decided = true;
    });
    await jest.advanceTimersByTimeAsync(299);
    expect(decided).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    await flushed;
    work.next({ tokens: 6 });
    work.complete();
    await interceptor.flush();
    expect(reporter.reported).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('scopes an Idempotency-Key by method and route, so a key reused elsewhere bills again', async () => {
    const interceptor = interceptorWith({ identifier: 'idempotency-key', meterAllRoutes: true });
    const key = { 'idempotency-key': 'reused' };
    await run(interceptor, PlainController, 'route', of(1), exchange({ headers: key }));
    const post = exchange({ headers: key });
    post.rawRequest.method = 'POST';
    await run(interceptor, PlainController, 'route', of(1), post);
    await run(interceptor, MeteredController, 'plain', of(1), exchange({ headers: key }));
    await run(interceptor, MeteredController, 'plain', of(1), exchange({ headers: key }));
    const identifiers = reporter.reported.map((event) => event.identifier);
    expect(new Set(identifiers).size).toBe(3);
    expect(identifiers[3]).toBe(identifiers[2]);
  });

  it('does not bill a handler that threw, nor a non-2xx response, by default', async () => {
    const interceptor = interceptorWith();
    const thrown = await run(interceptor, MeteredController, 'plain', throwError(() => new Error('nope')), exchange(), 500);
    expect(thrown).toEqual(new Error('nope'));
    await run(interceptor, MeteredController, 'plain', of({}), exchange(), 404);
    expect(reporter.reported).toEqual([]);
  });

  it('hands billIf the status, the error and the result', async () => {
    const outcomes: unknown[] = [];
    const interceptor = interceptorWith({
      billIf: (_context, outcome) => {
        outcomes.push(outcome);
        return outcome.statusCode === 404;
      },
    });
    await run(interceptor, MeteredController, 'plain', of({ found: false }), exchange(), 404);
    await run(interceptor, MeteredController, 'plain', throwError(() => 'bad'), exchange(), 500);
    expect(outcomes).toEqual([
      { statusCode: 404, error: undefined, result: { found: false } },
      { statusCode: 500, error: 'bad', result: undefined },
    ]);
    expect(reporter.reported).toHaveLength(1);
  });

  it('lets the handler set the value and event name, or skip, through setRequestUsage()', async () => {
    const interceptor = interceptorWith();
    const fastifyLike = exchange({ fastify: true });
    setRequestUsage(fastifyLike.request, { value: 9, eventName: 'custom' });
    await run(interceptor, MeteredController, 'special', of(1), fastifyLike);
    const skipped = exchange();
    skipRequestMetering(skipped.rawRequest);
    await run(interceptor, MeteredController, 'special', of(1), skipped);
    expect(reporter.reported).toEqual([expect.objectContaining({ eventName: 'custom', value: 9 })]);
  });

  it('steps aside for a request another adapter claimed, and claims the Node request under a Fastify wrapper', async () => {
    const interceptor = interceptorWith();
    const claimed = exchange();
    claimRequest(claimed.rawRequest);
    await run(interceptor, MeteredController, 'plain', of(1), claimed);
    expect(reporter.reported).toEqual([]);

    const fastifyLike = exchange({ fastify: true });
    await run(interceptor, MeteredController, 'plain', of(1), fastifyLike);
    expect(claimRequest(fastifyLike.rawRequest)).toBe(false);
    expect(reporter.reported).toHaveLength(1);
  });

  it('hands a claimed request its static meter and value, a value read from the result to work out later, and any route its @SkipMetering()', async () => {
    const interceptor = interceptorWith();
    const [staticRoute, computedRoute, skippedRoute] = [exchange(), exchange(), exchange()];
    for (const ex of [staticRoute, computedRoute]) claimRequest(ex.rawRequest);
    await run(interceptor, MeteredController, 'special', of(1), staticRoute);
    await run(interceptor, MeteredController, 'fromResult', of({ tokens: 3 }), computedRoute);
    await run(interceptor, MeteredController, 'skipped', of(1), skippedRoute);
    expect(getRequestUsage(staticRoute.rawRequest)).toEqual({ claimed: true, eventName: 'method_event', value: 5 });
    // A value function of the result: handed over to run when the adapter that claimed the request bills.
    const { handedOver, ...rest } = getRequestUsage(computedRoute.rawRequest);
    expect(rest).toEqual({ claimed: true });
    expect(await handedOver!()).toEqual({ eventName: undefined, value: 3 });
    expect(getRequestUsage(skippedRoute.rawRequest)).toEqual({ skip: true });
    expect(reporter.reported).toEqual([]);
  });

  it('does not bill a request without a customer, or with a value of 0', async () => {
    await run(interceptorWith({ customer: () => undefined }), MeteredController, 'plain');
    await run(interceptorWith(), MeteredController, 'fromResult', of({ tokens: 0 }));
    expect(reporter.reported).toEqual([]);
    expect(reporter.errors).toEqual([]);
  });

  it('reads the customer from the user a guard set, never from headers', async () => {
    const ex = exchange({ user: { stripeCustomerId: 'cus_real' }, headers: { 'x-customer-id': 'cus_fake', 'stripe-customer-id': 'cus_fake' } });
    await run(interceptorWith(), MeteredController, 'plain', of(1), ex);
    expect(reporter.reported).toEqual([expect.objectContaining({ customerId: 'cus_real' })]);
  });

  it('derives the identifier from the Idempotency-Key header when asked to', async () => {
    const interceptor = interceptorWith({ identifier: 'idempotency-key', idempotencyKeyHeader: 'X-Request-Key' });
    await run(interceptor, MeteredController, 'plain', of(1), exchange({ headers: { 'x-request-key': 'k1' } }));
    await run(interceptor, MeteredController, 'plain', of(1), exchange());
    expect(reporter.reported.map((event) => event.identifier)).toEqual([identifierFromIdempotencyKey('cus_1', 'class_event', 'GET MeteredController.plain', 'k1'), undefined]);
  });

  it('gives up on a value that does not settle in resolveTimeoutMs, through handleError', async () => {
    jest.useFakeTimers();
    const interceptor = interceptorWith({ resolveTimeoutMs: 250 });
    const ex = exchange();
    await lastValueFrom(interceptor.intercept(contextFor(ex, MeteredController, 'slow'), handlerReturning(of(1))));
    ex.finish();
    await jest.advanceTimersByTimeAsync(249);
    expect(reporter.errors).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    await interceptor.flush();
    expect(reporter.reported).toEqual([]);
    expect(reporter.errors).toEqual([expect.any(MeterAdapterError)]);
    expect(reporter.errors[0]!.message).toMatch(/MeteredController\.slow: the value resolver failed: the value resolver did not settle within 250 ms/);
  });

  it('routes a throwing report() and customer resolver to handleError, with the cause', async () => {
    const failure = new Error('queue on fire');
    reporter.reportThrows = failure;
    await run(interceptorWith(), MeteredController, 'plain');
    await run(interceptorWith({ customer: () => 42 as unknown as string }), MeteredController, 'plain');
    expect(reporter.errors).toHaveLength(2);
    expect(reporter.errors[0]).toMatchObject({ code: 'ERR_METER_ADAPTER', cause: failure });
    expect(reporter.errors[1]!.message).toMatch(/customer resolver failed: returned number/);
  });

  it('logs instead when handleError itself throws, and the handler result is untouched', async () => {
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    reporter.reportThrows = new Error('report failed');
    reporter.handleErrorThrows = new Error('hook failed for sk_test_abcdefghijklmnop');
    const result = await run(interceptorWith(), MeteredController, 'plain', of({ body: 'intact' }));
    expect(result).toEqual({ body: 'intact' });
    expect(logged).toHaveBeenCalledTimes(1);
    expect(String(logged.mock.calls[0]![0])).toMatch(/report failed.*hook failed/);
    expect(String(logged.mock.calls[0]![0])).not.toContain('sk_test_abcdefghijklmnop');
  });

  it('lets non-HTTP contexts through untouched', async () => {
    const interceptor = interceptorWith({ meterAllRoutes: true });
    const context = new ExecutionContextHost([{}, {}], PlainController, PlainController.prototype.route);
    context.setType('rpc');
    await expect(lastValueFrom(interceptor.intercept(context, handlerReturning(of('rpc'))))).resolves.toBe('rpc');
    await interceptor.flush();
    expect(reporter.reported).toEqual([]);
  });

  it('drain() gives up after its timeout on a request that never finishes', async () => {
    jest.useFakeTimers();
    const interceptor = interceptorWith();
    interceptor.intercept(contextFor(exchange(), MeteredController, 'plain'), handlerReturning(of(1))).subscribe();
    const drained = interceptor.drain(1000);
    await jest.advanceTimersByTimeAsync(1000);
    await expect(drained).resolves.toBe(false);
  });
});
