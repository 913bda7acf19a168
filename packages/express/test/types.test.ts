// Compile-time checks of the public types (enforced by `npm run typecheck`); the runtime assertion only lets jest run the file.
import type { CloseResult } from '@metered/core';
import type { MeteredRequest, MeteringMiddleware, MeteringMiddlewareOptions, MeterUsageOptions, RouteMeteringOptions } from '@metered/express';
import type { MeterUsageOptions as NestMeterUsageOptions, MeterUsageRouteOptions } from '@metered/nestjs';
import type { RequestHandler } from 'express';

const reporter = { apiKey: 'sk_test_types' };

// What an app adds to its users, the way the README shows: every resolver then sees it on req.user.
declare module '@metered/express' {
  interface MeteredUser {
    plan?: 'free' | 'pro';
  }
}


function typeChecks(metering: MeteringMiddleware): unknown[] {
  const asHandler: RequestHandler = metering; // mountable wherever Express takes a handler
  const closed: Promise<CloseResult | undefined> = metering.close();
  const full: MeteringMiddlewareOptions = {
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
  const missingReporter: MeteringMiddlewareOptions = {};
  // @ts-expect-error the payer is resolved per request, never a static id
  const staticCustomer: MeteringMiddlewareOptions = { reporter, customer: 'cus_123' };
  // @ts-expect-error only the two identifier sources exist
  const badIdentifier: MeteringMiddlewareOptions = { reporter, identifier: 'header' };
  // req.user is typed without a cast: the default customer field, and the app's own augmented ones.
  const typedUser: MeteringMiddlewareOptions = {
    reporter,
    customer: (req) => req.user?.stripeCustomerId,
    value: (req) => (req.user?.plan === 'pro' ? 2 : 1),
  };
  // The account is resolved per request from the typed user, sync or async.
  const connected: MeteringMiddlewareOptions = { reporter, account: (req) => Promise.resolve(req.user?.plan === 'pro' ? 'acct_1Pro' : undefined) };
  // @ts-expect-error the connected account is resolved per request, never a static id
  const staticAccount: MeteringMiddlewareOptions = { reporter, account: 'acct_1Pro' };
  // @ts-expect-error an account resolver answers an id or undefined, nothing else
  const numericAccount: MeteringMiddlewareOptions = { reporter, account: () => 42 };
  const userType: MeteredRequest['user'] = { stripeCustomerId: 'cus_123', plan: 'pro' };
  // @ts-expect-error req.user is typed, not any: a field nobody declared does not compile
  const undeclaredField: MeteringMiddlewareOptions = { reporter, customer: (req) => req.user?.customerId };
  // @ts-expect-error an augmented field keeps its type
  const wrongPlan: MeteredRequest['user'] = { plan: 'enterprise' };
  // The old names still compile, as deprecated aliases of the distinct new ones.
  const oldExpressName: MeterUsageOptions = full;
  const nestRoute: MeterUsageRouteOptions<{ rows: number }> = { value: (_ctx, result) => result.rows };
  const oldNestName: NestMeterUsageOptions<{ rows: number }> = nestRoute;
  // @ts-expect-error routes override event name and value only
  const routeCustomer: RouteMeteringOptions = { customer: () => 'cus_123' };
  return [asHandler, closed, full, missingReporter, staticCustomer, badIdentifier, routeCustomer, typedUser, userType, undeclaredField, wrongPlan, oldExpressName, oldNestName, connected, staticAccount, numericAccount];
}

it('keeps its public typings (see npm run typecheck)', () => {
  expect(typeof typeChecks).toBe('function');
});
