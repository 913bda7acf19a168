// Options are checked once, at creation: a bad one throws MeterConfigError naming it; an owned reporter is closed by close().
import { MeterConfigError } from '@metered/core';
import { DEFAULT_EVENT_NAME, meterRoute, meterUsage } from '@metered/express';
import type { MeteringMiddlewareOptions } from '@metered/express';
import express from 'express';
import request from 'supertest';
import { ALICE, billed, buildApp, reporterFor, reporterOptionsFor, useMeteringSuite } from './helpers';

describe('meterUsage options', () => {
  const suite = useMeteringSuite();

  const BAD: ReadonlyArray<readonly [string, unknown]> = [
    ['eventName', ''],
    ['eventName', 'x'.repeat(101)],
    ['eventName', 42],
    ['value', 0],
    ['value', -1],
    ['value', 1.5],
    ['value', '01'],
    ['customer', 'cus_123'],
    ['billIf', true],
    ['billAborted', 'yes'],
    ['identifier', 'header'],
    ['resolveTimeoutMs', 0],
    ['resolveTimeoutMs', Number.POSITIVE_INFINITY],
    ['abortGraceMs', -1],
    ['abortGraceMs', 1.5],
    ['abortGraceMs', 60_001],
    ['abortGraceMs', '100'],
    ['colour', 'blue'],
  ];

  it.each(BAD)('rejects %s = %p with a MeterConfigError naming it', (option, value) => {
    const { reporter } = reporterFor(suite.fake);
    try {
      const create = (): unknown => meterUsage({ reporter, [option]: value });
      expect(create).toThrow(MeterConfigError);
      expect(create).toThrow(`"${option}"`);
    } finally {
      void reporter.close();
    }
  });

  it('requires a reporter', () => {
    expect(() => meterUsage({} as MeteringMiddlewareOptions)).toThrow(/Invalid option "reporter": is required/);
    expect(() => meterUsage(undefined as unknown as MeteringMiddlewareOptions)).toThrow(MeterConfigError);
  });

  it('rejects an idempotencyKeyHeader that would never be read', () => {
    const { reporter } = reporterFor(suite.fake);
    expect(() => meterUsage({ reporter, idempotencyKeyHeader: 'x-key' })).toThrow(/"idempotencyKeyHeader": is only read with identifier/);
    expect(() => meterUsage({ reporter, identifier: 'idempotency-key', idempotencyKeyHeader: 'bad header' })).toThrow(/"idempotencyKeyHeader"/);
    void reporter.close();
  });

  it('passes bad reporter options through as core reports them', () => {
    expect(() => meterUsage({ reporter: { apiKey: 'pk_test_123' } })).toThrow(/Invalid option "apiKey"/);
  });

  it('rejects bad meterRoute options', () => {
    expect(() => meterRoute({})).toThrow(MeterConfigError);
    expect(() => meterRoute({ value: 0 })).toThrow(/"value"/);
    expect(() => meterRoute({ eventName: '' })).toThrow(/"eventName"/);
    expect(() => meterRoute({ customer: 'cus_1' } as never)).toThrow(/"customer": is not an option of meterRoute/);
  });

  it('returns a named middleware with its reporter reachable', () => {
    const { reporter } = reporterFor(suite.fake);
    const mw = meterUsage({ reporter });
    expect(mw.name).toBe('meterUsageMiddleware');
    expect(mw.reporter).toBe(reporter);
    expect(mw.ownsReporter).toBe(false);
    expect(meterRoute({ value: 2 }).name).toBe('meterRouteMiddleware');
    expect(DEFAULT_EVENT_NAME).toBe('api_requests');
    void reporter.close();
  });

  it('creates, uses and closes its own reporter from reporter options', async () => {
    const mw = meterUsage({ reporter: reporterOptionsFor(suite.fake) });
    expect(mw.ownsReporter).toBe(true);
    await request(buildApp(express, [mw])).get('/v1/search').set(ALICE).expect(200);
    await mw.close();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
    expect(() => mw.reporter.report({ eventName: 'api_requests', customerId: 'cus_alice' })).toThrow(/closed/);
  });

  it('close() leaves a reporter it was given open', async () => {
    const { reporter } = reporterFor(suite.fake);
    const mw = meterUsage({ reporter });
    await request(buildApp(express, [mw])).get('/v1/search').set(ALICE).expect(200);
    await mw.close();
    expect(() => reporter.report({ eventName: 'api_requests', customerId: 'cus_alice' })).not.toThrow();
    await reporter.close();
    expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 2 } });
  });
});
