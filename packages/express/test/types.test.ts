// Compile-time checks of the public types (enforced by `npm run typecheck`); the runtime assertion only lets jest run the file.
import type { CloseResult } from '@metered/core';
import type { MeteringMiddleware, MeterUsageOptions, RouteMeteringOptions } from '@metered/express';
import type { RequestHandler } from 'express';

const reporter = { apiKey: 'sk_test_types' };

function typeChecks(metering: MeteringMiddleware): unknown[] {
  const asHandler: RequestHandler = metering; // mountable wherever Express takes a handler
  const closed: Promise<CloseResult | undefined> = metering.close();
  const full: MeterUsageOptions = {
    reporter,
    eventName: (req) => (req.method === 'POST' ? 'writes' : 'reads'),
    customer: (_req, res) => Promise.resolve(typeof res.locals.customer === 'string' ? res.locals.customer : undefined),
    value: (_req, res) => (res.statusCode === 206 ? 2 : 1),
    billIf: (_req, res) => res.statusCode < 400,
    billAborted: true,
    identifier: 'idempotency-key',
    idempotencyKeyHeader: 'x-request-key',
    resolveTimeoutMs: 500,
  };
  // @ts-expect-error a reporter (or its options) is required
  const missingReporter: MeterUsageOptions = {};
  // @ts-expect-error the payer is resolved per request, never a static id
  const staticCustomer: MeterUsageOptions = { reporter, customer: 'cus_123' };
  // @ts-expect-error only the two identifier sources exist
  const badIdentifier: MeterUsageOptions = { reporter, identifier: 'header' };
  // @ts-expect-error routes override event name and value only
  const routeCustomer: RouteMeteringOptions = { customer: () => 'cus_123' };
  return [asHandler, closed, full, missingReporter, staticCustomer, badIdentifier, routeCustomer];
}

it('keeps its public typings (see npm run typecheck)', () => {
  expect(typeof typeChecks).toBe('function');
});
