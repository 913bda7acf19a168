// Unit tests of option checking, decorator checking, and the module's providers and shutdown.
import 'reflect-metadata';
import { MeterConfigError, MeterReporter } from '@metered/core';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MeteringModule, MeterUsage, MeterUsageInterceptor } from '../src';
import type { MeteringModuleOptions } from '../src';
import { resolveMeteringOptions } from '../src/metering.options';

const TEST_KEY = 'sk_test_metered_nestjs_unit';

/** A reporter double whose flush can be held open. */
function fakeReporter(flush: () => Promise<void> = () => Promise.resolve()) {
  return {
    report: jest.fn(() => 'id'),
    handleError: jest.fn(),
    flush: jest.fn(flush),
    close: jest.fn(() => Promise.resolve({ delivered: 0, failed: 0, dropped: 0 })),
  };
}

afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
});

describe('resolveMeteringOptions', () => {
  it.each<[string, unknown, RegExp]>([
    ['a missing options object', undefined, /"options"/],
    ['a missing reporter', {}, /"reporter": is required/],
    ['an unknown option', { reporter: { apiKey: TEST_KEY }, meterAll: true }, /"meterAll": is not an option of MeteringModule/],
    ['an empty event name', { reporter: { apiKey: TEST_KEY }, eventName: '' }, /"eventName"/],
    ['an event name over 100 characters', { reporter: { apiKey: TEST_KEY }, eventName: 'x'.repeat(101) }, /"eventName"/],
    ['a customer that is not a function', { reporter: { apiKey: TEST_KEY }, customer: 'cus_1' }, /"customer": must be a function/],
    ['a non-boolean meterAllRoutes', { reporter: { apiKey: TEST_KEY }, meterAllRoutes: 'yes' }, /"meterAllRoutes": must be a boolean/],
    ['a zero resolveTimeoutMs', { reporter: { apiKey: TEST_KEY }, resolveTimeoutMs: 0 }, /"resolveTimeoutMs"/],
    ['a fractional shutdownTimeoutMs', { reporter: { apiKey: TEST_KEY }, shutdownTimeoutMs: 1.5 }, /"shutdownTimeoutMs"/],
    ['an abortGraceMs over a minute', { reporter: { apiKey: TEST_KEY }, abortGraceMs: 60_001 }, /"abortGraceMs": must be an integer number of milliseconds from 0/],
    ['an unknown identifier source', { reporter: { apiKey: TEST_KEY }, identifier: 'header' }, /"identifier": must be one of 'generated', 'idempotency-key'/],
    ['a header that is never read', { reporter: { apiKey: TEST_KEY }, idempotencyKeyHeader: 'x-key' }, /"idempotencyKeyHeader": is only read/],
    ['bad reporter options', { reporter: { apiKey: 'pk_test_nope' } }, /"apiKey"/],
  ])('throws MeterConfigError naming the option for %s', (_case, options, message) => {
    expect(() => resolveMeteringOptions(options as MeteringModuleOptions)).toThrow(MeterConfigError);
    expect(() => resolveMeteringOptions(options as MeteringModuleOptions)).toThrow(message);
  });

  it('creates, and owns, a reporter from options; uses, and does not own, a reporter instance', async () => {
    const created = resolveMeteringOptions({ reporter: { apiKey: TEST_KEY } });
    expect(created.reporter).toBeInstanceOf(MeterReporter);
    expect(created.ownsReporter).toBe(true);
    await created.reporter.close();

    const given = fakeReporter();
    const passed = resolveMeteringOptions({ reporter: given as unknown as MeterReporter });
    expect(passed.reporter).toBe(given);
    expect(passed.ownsReporter).toBe(false);
    expect(Object.isFrozen(passed)).toBe(true);
    expect(passed).toMatchObject({ eventName: 'api_requests', meterAllRoutes: false, billAborted: false, abortGraceMs: 0, resolveTimeoutMs: 1000, shutdownTimeoutMs: 10_000 });
  });
});

describe('@MeterUsage()', () => {
  it.each<[string, () => unknown, RegExp]>([
    ['an empty event name', () => MeterUsage(''), /"@MeterUsage.eventName"/],
    ['a zero value', () => MeterUsage('x', { value: 0 }), /"@MeterUsage.value"/],
    ['a fractional value', () => MeterUsage('x', { value: 1.5 }), /"@MeterUsage.value"/],
    ['a negative value string', () => MeterUsage('x', { value: '-3' }), /"@MeterUsage.value"/],
    ['an unknown option', () => MeterUsage('x', { values: 3 } as never), /"@MeterUsage.values"/],
    ['dimensions that are not strings', () => MeterUsage('x', { dimensions: { tier: 1 } as never }), /"@MeterUsage.dimensions"/],
  ])('throws MeterConfigError when the class is declared, for %s', (_case, declare, message) => {
    expect(declare).toThrow(MeterConfigError);
    expect(declare).toThrow(message);
  });

  it('types value functions from the annotated result', () => {
    interface Completion {
      usage: { tokens: number };
    }
    // Compile-time checks (root `npm run typecheck`); at run time they only need to build decorators.
    MeterUsage('tokens', { value: (_context, result: Completion) => result.usage.tokens });
    MeterUsage('tokens', { value: (_context, result: Completion) => Promise.resolve(BigInt(result.usage.tokens)) });
    // @ts-expect-error a value is a number, bigint or string of digits
    expect(() => MeterUsage('tokens', { value: true })).toThrow(MeterConfigError);
    // @ts-expect-error a value function returns a usage amount
    const wrongResolver = () => MeterUsage('tokens', { value: () => ({ tokens: 1 }) });
    expect(wrongResolver).toEqual(expect.any(Function));
    expect(MeterUsage({ value: 2 })).toEqual(expect.any(Function));
  });
});

describe('MeteringModule', () => {
  it('provides the reporter and the interceptor', async () => {
    const reporter = fakeReporter();
    const moduleRef = await Test.createTestingModule({ imports: [MeteringModule.forRoot({ reporter: reporter as unknown as MeterReporter })] }).compile();
    expect(moduleRef.get(MeterReporter)).toBe(reporter);
    expect(moduleRef.get(MeterUsageInterceptor)).toBeInstanceOf(MeterUsageInterceptor);
    await moduleRef.close();
  });

  it('needs exactly one of useFactory, useClass, useExisting in forRootAsync', () => {
    expect(() => MeteringModule.forRootAsync({})).toThrow(/needs exactly one of useFactory, useClass or useExisting, got none/);
    expect(() => MeteringModule.forRootAsync({ useFactory: () => ({ reporter: { apiKey: TEST_KEY } }), useExisting: 'X' })).toThrow(/got useFactory and useExisting/);
  });

  it('closes a reporter it created on shutdown', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [MeteringModule.forRoot({ reporter: { apiKey: TEST_KEY }, shutdownTimeoutMs: 500 })] }).compile();
    await moduleRef.init();
    const reporter = moduleRef.get(MeterReporter);
    const close = jest.spyOn(reporter, 'close');
    await moduleRef.close();
    expect(close).toHaveBeenCalledWith({ timeoutMs: expect.any(Number) });
    expect(close.mock.calls[0]![0]!.timeoutMs).toBeLessThanOrEqual(500);
  });

  it('flushes, and never closes, a reporter passed in', async () => {
    const reporter = fakeReporter();
    const moduleRef = await Test.createTestingModule({ imports: [MeteringModule.forRoot({ reporter: reporter as unknown as MeterReporter })] }).compile();
    await moduleRef.init();
    await moduleRef.close();
    expect(reporter.flush).toHaveBeenCalledTimes(1);
    expect(reporter.close).not.toHaveBeenCalled();
  });

  it('bounds shutdown by shutdownTimeoutMs and never makes close() fail', async () => {
    jest.useFakeTimers();
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const reporter = fakeReporter(() => new Promise<void>(() => undefined));
    const moduleRef = await Test.createTestingModule({
      imports: [MeteringModule.forRoot({ reporter: reporter as unknown as MeterReporter, shutdownTimeoutMs: 2000 })],
    }).compile();
    await moduleRef.init();
    let closed = false;
    const closing = moduleRef.close().then(() => {
      closed = true;
    });
    await jest.advanceTimersByTimeAsync(1999);
    expect(closed).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    await closing;
    expect(logged).toHaveBeenCalledWith(expect.stringMatching(/flushing the meter reporter did not settle within 2000 ms/));
  });
});
