// What bills and what does not: one event per successful authenticated request, on both Express majors.
import { meterRoute, meterUsage, setRequestUsage, skipRequestMetering } from '@metered/express';
import type { NextFunction, Request, Response } from 'express';
import request from 'supertest';
import { ALICE, BOB, EXPRESS_VERSIONS, billed, buildApp, reporterFor, useMeteringSuite } from './helpers';

describe.each(EXPRESS_VERSIONS)('meterUsage on %s', (_name, express) => {
  const suite = useMeteringSuite();
  const { meter } = suite;

  it('bills one event per successful request, to the authenticated customer', async () => {
    const mw = meter();
    const app = buildApp(express, [mw]);

    await request(app).get('/v1/search?q=x').set(ALICE).expect(200);
    await request(app).get('/v1/search').set(ALICE).expect(200);
    await request(app).get('/v1/search').set(BOB).expect(200);
    await mw.flush();

    expect(billed(suite.fake)).toHaveLength(3);
    expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 2 }, cus_bob: { api_requests: 1 } });
    expect(mw.stats()).toMatchObject({ seen: 3, metered: 3, errors: 0, inProgress: 0 });
  });

  it('bills nothing for 4xx, 5xx, unauthenticated, skipped and unknown routes', async () => {
    const mw = meter();
    const app = buildApp(express, [mw]);

    await request(app).get('/v1/fail').set(ALICE).expect(500);
    await request(app).get('/v1/invalid').set(ALICE).expect(422);
    await request(app).get('/v1/nothing-here').set(ALICE).expect(404);
    await request(app).get('/v1/search').expect(401);
    await request(app).get('/v1/search').set({ authorization: 'Bearer key_unknown' }).expect(401);
    await request(app).get('/health').set(ALICE).expect(200);
    await mw.flush();

    expect(billed(suite.fake)).toEqual([]);
    expect(mw.stats()).toEqual({
      seen: 6,
      metered: 0,
      skipped: { total: 6, noCustomer: 0, notBillable: 5, aborted: 0, skippedRoute: 1, zeroValue: 0, duplicate: 0 },
      errors: 0,
      inProgress: 0,
    });
  });

  it('counts a successful request without a customer as noCustomer', async () => {
    const mw = meter();
    const app = buildApp(express, [mw], (a) => a.get('/public', (_req, res) => res.send('hi')));

    await request(app).get('/public').expect(200);
    await mw.flush();

    expect(billed(suite.fake)).toEqual([]);
    expect(mw.stats().skipped.noCustomer).toBe(1);
  });

  it('uses the configured event name and a static value', async () => {
    const mw = meter({ eventName: 'exports', value: 5 });
    await request(buildApp(express, [mw])).get('/v1/search').set(ALICE).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'exports', value: '5' }]);
  });

  it('picks the event name per request with a function', async () => {
    const mw = meter({ eventName: (req) => (req.path.startsWith('/v1/search') ? 'api_requests' : 'exports') });
    const app = buildApp(express, [mw], (a) => a.get('/v1/export', (_req, res) => res.send('csv')));
    await request(app).get('/v1/search').set(ALICE).expect(200);
    await request(app).get('/v1/export').set(ALICE).expect(200);
    await mw.flush();
    expect(suite.fake.totals()).toEqual({ cus_alice: { api_requests: 1, exports: 1 } });
  });

  it('resolves an async value after the response', async () => {
    const mw = meter({ value: (_req, res) => Promise.resolve(Number(res.get('x-units') ?? '1')) });
    const app = buildApp(express, [mw], (a) =>
      a.get('/v1/units', (_req, res) => {
        res.set('x-units', '7').send('ok');
      }),
    );
    await request(app).get('/v1/units').set(ALICE).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '7' }]);
  });

  it('bills the value and event name a handler sets for its own request (LLM tokens)', async () => {
    const mw = meter();
    const app = buildApp(express, [mw]);
    await request(app).post('/v1/generate').set(ALICE).send({ prompt: 'one two three four' }).expect(200);
    await request(app).post('/v1/generate').set(BOB).send({ prompt: 'hi' }).expect(200);
    await mw.flush();
    expect(suite.fake.totals()).toEqual({ cus_alice: { llm_tokens: 12 }, cus_bob: { llm_tokens: 3 } });
  });

  it('skips a request whose value is 0 (nothing used)', async () => {
    const mw = meter();
    await request(buildApp(express, [mw])).post('/v1/generate').set(ALICE).send({ prompt: '' }).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([]);
    expect(mw.stats().skipped.zeroValue).toBe(1);
  });

  it('lets a handler opt its request out with skipRequestMetering(req)', async () => {
    const mw = meter();
    const app = buildApp(express, [mw], (a) =>
      a.get('/v1/free', (req, res) => {
        skipRequestMetering(req);
        res.send('free');
      }),
    );
    await request(app).get('/v1/free').set(ALICE).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([]);
    expect(mw.stats().skipped.skippedRoute).toBe(1);
  });

  it('gives up a value resolver that never settles after resolveTimeoutMs, and reports it', async () => {
    const { reporter, errors } = reporterFor(suite.fake);
    const mw = meterUsage({ reporter, value: () => new Promise<number>(() => undefined), resolveTimeoutMs: 20 });
    suite.closeAfterTest(mw);
    await request(buildApp(express, [mw])).get('/v1/search').set(ALICE).expect(200);
    await mw.flush();

    expect(billed(suite.fake)).toEqual([]);
    expect(mw.stats()).toMatchObject({ metered: 0, errors: 1, inProgress: 0 });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('ERR_METER_ADAPTER');
    expect(errors[0]!.message).toMatch(/value resolver .*did not settle within 20 ms/);
  });

  it('awaits an async customer resolver (a lookup by user id)', async () => {
    const accounts = new Map([['u_1', 'cus_bob']]);
    const mw = meter({ customer: (_req, res) => Promise.resolve(accounts.get(String(res.locals.userId))) });
    const app = buildApp(express, [mw], (a) =>
      a.get('/v1/me', (_req, res) => {
        res.locals.userId = 'u_1';
        res.send('me');
      }),
    );
    await request(app).get('/v1/me').set(ALICE).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_bob', eventName: 'api_requests', value: '1' }]);
  });

  it('gives up a customer resolver that never settles after resolveTimeoutMs, and reports it', async () => {
    const { reporter, errors } = reporterFor(suite.fake);
    const mw = meterUsage({ reporter, customer: () => new Promise<string>(() => undefined), resolveTimeoutMs: 20 });
    suite.closeAfterTest(mw);
    await request(buildApp(express, [mw])).get('/v1/search').set(ALICE).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([]);
    expect(mw.stats()).toMatchObject({ metered: 0, errors: 1, inProgress: 0 });
    expect(errors.map((e) => e.code)).toEqual(['ERR_METER_ADAPTER']);
    expect(errors[0]!.message).toMatch(/customer resolver .*did not settle within 20 ms/);
  });

  it('resolves the customer only after the response has finished', async () => {
    const order: string[] = [];
    const mw = meter({
      customer: (req, res) => {
        order.push(`customer resolver (response ended: ${String(res.writableEnded)})`);
        return (req as Request & { user?: { stripeCustomerId: string } }).user?.stripeCustomerId;
      },
    });
    const app = buildApp(express, [mw], (a) =>
      a.get('/v1/order', (_req, res) => {
        order.push('handler');
        res.send('ok');
      }),
    );
    await request(app).get('/v1/order').set(ALICE).expect(200);
    await mw.flush();
    expect(order).toEqual(['handler', 'customer resolver (response ended: true)']);
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
  });

  it('calls next() synchronously: the handler runs in the same tick as the middleware', async () => {
    const mw = meter();
    const nextCalledSynchronously: boolean[] = [];
    const probe = (req: Request, res: Response, next: NextFunction): void => {
      let sameTick = true;
      mw(req, res, () => {
        nextCalledSynchronously.push(sameTick);
        next();
      });
      sameTick = false;
    };
    await request(buildApp(express, [probe])).get('/v1/search').set(ALICE).expect(200);
    await mw.flush();
    expect(nextCalledSynchronously).toEqual([true]);
    expect(billed(suite.fake)).toHaveLength(1);
  });

  it('emits one event when the same middleware is mounted twice', async () => {
    const mw = meter();
    await request(buildApp(express, [mw, mw])).get('/v1/search').set(ALICE).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toHaveLength(1);
    expect(mw.stats()).toMatchObject({ seen: 2, metered: 1, skipped: { duplicate: 1, total: 1 } });
  });

  it('emits one event when a second mount is reached after the first has billed the request and let go of its claim', async () => {
    const { reporter, errors } = reporterFor(suite.fake);
    const first = meterUsage({ reporter, eventName: 'api_requests' });
    const late = meterUsage({ reporter, eventName: 'api_requests' });
    try {
      const app = buildApp(express, [first], (a) => {
        // An anti-pattern apps have: next() after answering, here once the first mount's metering settled.
        a.get('/v1/late', (_req, res, next) => {
          res.once('finish', () => setImmediate(next));
          res.send('ok');
        });
        a.use(late, (_req: Request, _res: Response, next: NextFunction) => next());
      });
      await request(app).get('/v1/late').set(ALICE).expect(200);
      await request(app).get('/v1/late').set(ALICE).expect(200);
      await first.flush();
      await late.flush();
      expect(billed(suite.fake)).toHaveLength(2);
      expect(first.stats()).toMatchObject({ metered: 2 });
      expect(late.stats()).toMatchObject({ seen: 2, metered: 0, skipped: { duplicate: 2 } });
      // Told once, with the rule, through onError.
      expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('its response had already been sent')]);
    } finally {
      await reporter.close();
    }
  });

  it('emits one event when one middleware is mounted app-wide and another on the route', async () => {
    const appLevel = meter();
    const { reporter } = reporterFor(suite.fake);
    const routeLevel = meterUsage({ reporter, eventName: 'exports' });
    try {
      const app = buildApp(express, [appLevel], (a) => a.get('/v1/report', routeLevel, (_req, res) => res.send('ok')));
      await request(app).get('/v1/report').set(ALICE).expect(200);
      await appLevel.flush();
      await routeLevel.flush();
      // The first middleware to see the request owns it; a second is counted as a duplicate.
      expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'api_requests', value: '1' }]);
      expect(routeLevel.stats()).toMatchObject({ seen: 1, metered: 0, skipped: { duplicate: 1 } });
    } finally {
      await reporter.close();
    }
  });

  it('meters from a route-level mount alone', async () => {
    const mw = meter({ eventName: 'exports', value: 3 });
    const app = buildApp(express, [], (a) => a.get('/v1/report', mw, (_req, res) => res.send('ok')));
    await request(app).get('/v1/report').set(ALICE).expect(200);
    await request(app).get('/v1/search').set(ALICE).expect(200);
    await mw.flush();
    expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'exports', value: '3' }]);
  });

  describe('per-route configuration', () => {
    it('meterRoute overrides the event name and value of one route', async () => {
      const mw = meter();
      const app = buildApp(express, [mw], (a) => {
        a.get('/v1/export', meterRoute({ eventName: 'exports', value: 10 }), (_req, res) => res.send('csv'));
        a.get('/v1/rows', meterRoute({ value: (req) => Number(req.query.n ?? 1) }), (_req, res) => res.send('rows'));
      });
      await request(app).get('/v1/export').set(ALICE).expect(200);
      await request(app).get('/v1/rows?n=4').set(ALICE).expect(200);
      await request(app).get('/v1/search').set(ALICE).expect(200);
      await mw.flush();
      expect(suite.fake.totals()).toEqual({ cus_alice: { exports: 10, api_requests: 5 } });
    });

    it('a handler-set value wins over meterRoute', async () => {
      const mw = meter();
      const app = buildApp(express, [mw], (a) =>
        a.get('/v1/export', meterRoute({ eventName: 'exports', value: 10 }), (req, res) => {
          setRequestUsage(req, { value: 2 });
          res.send('csv');
        }),
      );
      await request(app).get('/v1/export').set(ALICE).expect(200);
      await mw.flush();
      expect(billed(suite.fake)).toEqual([{ customer: 'cus_alice', eventName: 'exports', value: '2' }]);
    });

    it('meterRoute on a router combines with one on its route, the inner one winning', async () => {
      const mw = meter();
      const app = buildApp(express, [mw], (a) => {
        const router = express.Router();
        router.use(meterRoute({ eventName: 'exports', value: 2 }));
        router.get('/big', meterRoute({ value: 9 }), (_req, res) => res.send('big'));
        router.get('/small', (_req, res) => res.send('small'));
        a.use('/v1/exports', router);
      });
      await request(app).get('/v1/exports/big').set(ALICE).expect(200);
      await request(app).get('/v1/exports/small').set(ALICE).expect(200);
      await mw.flush();
      expect(suite.fake.totals()).toEqual({ cus_alice: { exports: 11 } });
    });

    it('skipMetering() excludes a route even for an authenticated customer', async () => {
      const mw = meter();
      const app = buildApp(express, [mw]);
      await request(app).get('/health').set(ALICE).expect(200, 'ok');
      await mw.flush();
      expect(billed(suite.fake)).toEqual([]);
      expect(mw.stats().skipped.skippedRoute).toBe(1);
    });
  });
});
