// The Express side of Stripe's verdict: the meter error webhook router and the start-up meter check.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { MeterReporter } from '@metered/core';
import type { MeterError } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import express from 'express';
import request from 'supertest';
import { MeterRejectedEventError, MeterVerifyError, meterErrorWebhook, meterRoute, meterUsage } from '../src';

let fake: FakeStripe;
let reporter: MeterReporter;
const errors: MeterError[] = [];
const warnings: Array<{ obj: object; msg?: string }> = [];

beforeEach(async () => {
  errors.length = 0;
  warnings.length = 0;
  fake = await startFakeStripe({ customers: ['cus_real'], meters: ['api_requests', { event_name: 'archived', status: 'inactive' }], webhook: { batchWindowMs: 60_000 } });
  const noop = (): void => undefined;
  reporter = new MeterReporter({
    apiKey: fake.apiKey,
    apiBaseUrl: fake.url,
    meterEventsBaseUrl: fake.meterEventsUrl,
    flushIntervalMs: 20,
    onError: (error) => errors.push(error),
    logger: { debug: noop, info: noop, error: noop, warn: (obj, msg) => warnings.push({ obj, msg }) },
  });
});

afterEach(async () => {
  await reporter.close({ timeoutMs: 0 });
  await fake.close();
});

function app(customer: string): express.Express {
  const a = express();
  a.use(meterErrorWebhook({ reporter, secrets: fake.webhooks.secrets }));
  // An app-wide JSON parser after the router: the webhook still sees the raw bytes.
  a.use(express.json());
  a.use(meterUsage({ reporter, customer: () => customer, verifyMeters: 'fail' }));
  a.get('/work', (_req, res) => res.json({ ok: true }));
  return a;
}

async function listen(a: express.Express): Promise<{ server: Server; url: string }> {
  const server = await new Promise<Server>((resolve) => {
    const s = a.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

it('catches a misconfigured customer through the signed webhook: onError with the customer and identifier', async () => {
  const { server, url } = await listen(app('cus_typo'));
  try {
    fake.webhooks.setUrl(`${url}/stripe/meter-errors`);
    await request(url).get('/work').expect(200);
    await reporter.flush();
    const [delivery] = await fake.webhooks.flush();
    expect(delivery?.status).toBe(200);
    while (errors.length === 0) await new Promise((resolve) => setImmediate(resolve));
    const error = errors[0] as MeterRejectedEventError;
    expect(error).toBeInstanceOf(MeterRejectedEventError);
    expect(error).toMatchObject({ code: 'ERR_METER_EVENT_REJECTED', customerId: 'cus_typo', eventName: 'api_requests', stripeCode: 'meter_event_customer_not_found' });
    expect(error.identifier).toBe(fake.rejected()[0]?.identifier);
  } finally {
    server.close();
  }
});

it('answers 400 to a tampered body, a wrong secret and a missing signature, and processes nothing', async () => {
  reporter.report({ eventName: 'api_requests', customerId: 'cus_typo' });
  await reporter.flush();
  const [delivery] = await fake.webhooks.flush();
  const a = app('cus_real');
  const tampered = await request(a).post('/stripe/meter-errors').set('stripe-signature', delivery!.signature).set('content-type', 'application/json').send(delivery!.body.replace('"livemode":false', '"livemode":true'));
  expect(tampered.status).toBe(400);
  expect(tampered.body).toMatchObject({ error: { code: 'ERR_METER_WEBHOOK_SIGNATURE' } });
  const other = express().use(meterErrorWebhook({ reporter, secrets: ['whsec_wrong'] }));
  expect((await request(other).post('/stripe/meter-errors').set('stripe-signature', delivery!.signature).send(delivery!.body)).status).toBe(400);
  expect((await request(a).post('/stripe/meter-errors').send(delivery!.body)).status).toBe(400);
  expect(fake.requests().some((r) => r.path.startsWith('/v2/core/events/'))).toBe(false);
  expect(errors).toHaveLength(0);
});

it("ready() with verifyMeters 'fail' rejects listing every problem of the middleware's and meterRoute()'s event names", async () => {
  const a = express();
  a.get('/old', meterRoute({ eventName: 'archived' }), (_req, res) => res.end());
  const metering = meterUsage({ reporter, eventName: 'missing_meter', verifyMeters: 'fail' });
  a.use(metering);
  const failure = await metering.ready().catch((error: unknown) => error);
  expect(failure).toBeInstanceOf(MeterVerifyError);
  expect((failure as MeterVerifyError).code).toBe('ERR_METER_VERIFY_FAILED');
  expect((failure as MeterVerifyError).problems.map((p) => [p.eventName, p.code])).toEqual(expect.arrayContaining([['missing_meter', 'meter_missing'], ['archived', 'meter_inactive']]));
});

it("ready() with verifyMeters 'warn' logs each problem and resolves; 'off' asks Stripe nothing", async () => {
  const warn = meterUsage({ reporter, eventName: 'missing_meter' });
  const result = await warn.ready();
  expect(result?.ok).toBe(false);
  expect(warnings.map((w) => w.obj)).toContainEqual(expect.objectContaining({ code: 'WARN_METER_VERIFY_PROBLEM', problem: 'meter_missing', eventName: 'missing_meter' }));
  const before = fake.requests().length;
  await expect(meterUsage({ reporter, verifyMeters: 'off' }).ready()).resolves.toBeUndefined();
  expect(fake.requests().length).toBe(before);
  expect(() => meterUsage({ reporter, verifyMeters: 'loud' as 'warn' })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_OPTION' }) as Error);
});
