// Several meters per request with setRequestUsage(req, [...]): each meter billed once, across retries and double mounts.
import { MeterReporter } from '@metered/core';
import type { MeterError } from '@metered/core';
import { meterUsage, setRequestUsage } from '@metered/express';
import type { MeteringMiddleware, MeteringMiddlewareOptions } from '@metered/express';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import type { Request, Response } from 'express';
import request from 'supertest';
import { ALICE, BOB, EXPRESS_VERSIONS, FAKE_API_KEY, buildApp, reporterOptionsFor } from './helpers';
import type { ExpressFactory } from './helpers';

let fake: FakeStripe;
const opened: MeterReporter[] = [];

beforeAll(async () => {
  fake = await startFakeStripe({ apiKey: FAKE_API_KEY, meters: ['api_requests', 'input_tokens', 'output_tokens'] });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
});
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((reporter) => reporter.close({ timeoutMs: 0 })));
});

function metering(errors: MeterError[] = [], options: Partial<MeteringMiddlewareOptions> = {}): MeteringMiddleware {
  const reporter = new MeterReporter({ ...reporterOptionsFor(fake), onError: (error) => errors.push(error) });
  opened.push(reporter);
  return meterUsage({ reporter, ...options });
}

/** A chat route whose handler learns its token counts at the end and bills both. */
function chatApp(express: ExpressFactory, before: MeteringMiddleware[]): ReturnType<typeof buildApp> {
  return buildApp(express, before, (app) =>
    app.post('/v1/chat', express.json(), (req: Request, res: Response) => {
      const { input, output } = req.body as { input: number; output: number };
      setRequestUsage(req, [
        { eventName: 'input_tokens', value: input },
        { eventName: 'output_tokens', value: output },
        { eventName: 'api_requests' },
      ]);
      res.json({ ok: true });
    }),
  );
}

describe.each(EXPRESS_VERSIONS)('several meters per request on %s', (_name, express) => {
  it('bills each meter a handler sets with setRequestUsage(req, [...]) once, with distinct identifiers', async () => {
    const mw = metering();
    const app = chatApp(express, [mw]);
    await request(app).post('/v1/chat').set(ALICE).send({ input: 100, output: 25 }).expect(200);
    await request(app).post('/v1/chat').set(BOB).send({ input: 8, output: 0 }).expect(200);
    await mw.flush();
    expect(fake.totals()).toEqual({
      cus_alice: { input_tokens: 100, output_tokens: 25, api_requests: 1 },
      cus_bob: { input_tokens: 8, api_requests: 1 },
    });
    expect(new Set(fake.events().map((event) => event.identifier)).size).toBe(5);
    expect(mw.stats()).toMatchObject({ metered: 2, errors: 0 });
  });

  it('bills each meter once across retries carrying one Idempotency-Key, and again for another key', async () => {
    const mw = metering([], { identifier: 'idempotency-key' });
    const app = chatApp(express, [mw]);
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await request(app).post('/v1/chat').set(ALICE).set('idempotency-key', 'chat-1').send({ input: 10, output: 2 }).expect(200);
    }
    await request(app).post('/v1/chat').set(ALICE).set('idempotency-key', 'chat-2').send({ input: 10, output: 2 }).expect(200);
    await mw.flush();
    expect(fake.totals()).toEqual({ cus_alice: { input_tokens: 20, output_tokens: 4, api_requests: 2 } });
    expect(mw.stats()).toMatchObject({ metered: 4 });
  });

  it('bills each meter once when the middleware is mounted twice', async () => {
    const mw = metering();
    await request(chatApp(express, [mw, mw])).post('/v1/chat').set(ALICE).send({ input: 4, output: 5 }).expect(200);
    await mw.flush();
    expect(fake.totals()).toEqual({ cus_alice: { input_tokens: 4, output_tokens: 5, api_requests: 1 } });
    expect(mw.stats()).toMatchObject({ metered: 1, skipped: { duplicate: 1 } });
  });

  it('keeps the meters the reporter accepts when one entry is invalid, and reports the invalid one', async () => {
    const errors: MeterError[] = [];
    const mw = metering(errors);
    const app = buildApp(express, [mw], (a) =>
      a.get('/v1/mixed', (req, res) => {
        setRequestUsage(req, [
          { eventName: 'input_tokens', value: 3 },
          { eventName: 'output_tokens', value: -1 },
        ]);
        res.send('ok');
      }),
    );
    await request(app).get('/v1/mixed').set(ALICE).expect(200, 'ok');
    await mw.flush();
    expect(fake.totals()).toEqual({ cus_alice: { input_tokens: 3 } });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'ERR_METER_ADAPTER' });
    expect(errors[0]!.message).toMatch(/value/);
    expect(mw.stats()).toMatchObject({ errors: 1 });
  });
});
