// Stripe's verdict in Nest, end to end against the fake on both platforms: the meter error webhook controller and the start-up meter check.
import 'reflect-metadata';
import { MeterReporter, signWebhookPayload } from '@metered/core';
import type { MeterError } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe, WebhookDelivery } from '@metered/testing';
import { Controller, Get, Post, UseGuards } from '@nestjs/common';
import type { DynamicModule, INestApplication } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { MeteringModule, MeteringVerdict, MeterRejectedEventError, MeterUsage, MeterVerifyError, MeterWebhookError } from '../src';
import type { MeteringModuleOptions } from '../src';
import { ApiKeyGuard, PLATFORMS, fakeReporterOptions, settle } from './fixtures';
import type { Platform } from './fixtures';

const HOOK = '/hooks/stripe-meters';

@Controller()
@UseGuards(ApiKeyGuard)
class WorkController {
  @Get('work')
  @MeterUsage('api_requests')
  work(): { ok: true } {
    return { ok: true };
  }

  @Post('chat')
  @MeterUsage([{ eventName: 'tokens', value: 3 }, { eventName: 'missing_meter' }])
  chat(): { ok: true } {
    return { ok: true };
  }
}

let fake: FakeStripe;
let reporter: MeterReporter;
const errors: MeterError[] = [];
const warnings: object[] = [];

beforeEach(async () => {
  errors.length = 0;
  warnings.length = 0;
  // cus_bob (key_bob) is not one of Stripe's customers: the stream answers {} and the fake rejects it later.
  fake = await startFakeStripe({
    customers: ['cus_alice'],
    meters: ['api_requests', { event_name: 'tokens', valueKey: 'amount' }],
    webhook: { batchWindowMs: 60_000 },
  });
  const noop = (): void => undefined;
  reporter = new MeterReporter({
    ...fakeReporterOptions(fake),
    flushIntervalMs: 20,
    onError: (error) => errors.push(error),
    logger: { debug: noop, info: noop, error: noop, warn: (obj) => warnings.push(obj) },
  });
});

afterEach(async () => {
  await reporter.close({ timeoutMs: 0 });
  await fake.close();
});

/** Resolves once `condition()` holds, checked after each macrotask (the webhook's work runs after its 200). */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

interface Boot {
  platform: Platform;
  metering?: DynamicModule;
  options?: Partial<MeteringModuleOptions>;
  rawBody?: boolean;
}

/** Creates the app (not yet initialised): the tests that expect bootstrap to fail call init() themselves. */
async function createApp({ platform, metering, options = {}, rawBody = true }: Boot): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [metering ?? MeteringModule.forRoot({ reporter, webhook: { path: HOOK, secrets: fake.webhooks.secrets }, verifyMeters: 'off', ...options })],
    controllers: [WorkController],
  }).compile();
  return platform === 'express'
    ? moduleRef.createNestApplication({ logger: false, rawBody })
    : moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false, rawBody });
}

async function init(app: INestApplication): Promise<void> {
  await app.init();
  if (platform(app) === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
}

function platform(app: INestApplication): Platform {
  return app.getHttpAdapter().getType() === 'fastify' ? 'fastify' : 'express';
}

/** Boots the app listening on 127.0.0.1, where the fake's event destination can reach it. */
async function listen(app: INestApplication): Promise<string> {
  await app.listen(0, '127.0.0.1');
  return (await app.getUrl()).replace('[::1]', '127.0.0.1');
}

/** One genuine, signed meter error report for an event naming cus_bob (not sent anywhere yet). */
async function rejectedDelivery(): Promise<WebhookDelivery> {
  reporter.report({ eventName: 'api_requests', customerId: 'cus_bob' });
  await reporter.flush();
  const [delivery] = await fake.webhooks.flush();
  return delivery!;
}

function eventFetches(): string[] {
  return fake.requests().filter((r) => r.path.startsWith('/v2/core/events/')).map((r) => r.path);
}

describe.each(PLATFORMS)("Stripe's verdict on platform-%s", (platform) => {
  it('catches an unknown customer through the signed webhook: onError with identifier, customer, event name and code; the webhook itself is never billed', async () => {
    // meterAllRoutes and a customer for every request: the webhook's POST would be billed unless it is skipped.
    const app = await createApp({ platform, options: { meterAllRoutes: true, customer: (context) => context.switchToHttp().getRequest<{ user?: { stripeCustomerId: string } }>().user?.stripeCustomerId ?? 'cus_alice' } });
    try {
      const url = await listen(app);
      fake.webhooks.setUrl(`${url}${HOOK}`);
      await request(url).get('/work').set('x-api-key', 'key_bob').expect(200);
      await settle(app);
      const [delivery] = await fake.webhooks.flush();
      expect(delivery).toMatchObject({ status: 200, type: 'v1.billing.meter.error_report_triggered' });
      await until(() => errors.length > 0, 'the rejected event to reach onError');
      const [error] = errors;
      expect(error).toBeInstanceOf(MeterRejectedEventError);
      expect(error).toMatchObject({ code: 'ERR_METER_EVENT_REJECTED', customerId: 'cus_bob', eventName: 'api_requests', stripeCode: 'meter_event_customer_not_found' });
      expect((error as MeterRejectedEventError).identifier).toBe(fake.rejected()[0]?.identifier);
      expect(eventFetches()).toEqual([`/v2/core/events/${delivery!.eventId}`]);
      await settle(app);
      // Only /work's event reached Stripe (and was rejected there): the webhook's POST would have billed cus_alice.
      expect(fake.events()).toEqual([]);
      expect(fake.rejected().map((record) => record.eventName)).toEqual(['api_requests']);
    } finally {
      await app.close();
    }
  });

  it('answers 400 to a tampered body, a wrong secret and a stale timestamp, and processes none of them', async () => {
    const app = await createApp({ platform });
    try {
      const url = await listen(app);
      const delivery = await rejectedDelivery();
      const event = JSON.parse(delivery.body) as { id: string };
      // Each refused body names its own event id: one processed by mistake would be fetched under that id.
      const tampered = delivery.body.replace(event.id, 'evt_test_tampered');
      const otherBody = delivery.body.replace(event.id, 'evt_test_other_secret');
      const staleBody = delivery.body.replace(event.id, 'evt_test_stale');
      const refused = [
        { body: tampered, signature: delivery.signature, reason: /No v1 signature/ },
        { body: otherBody, signature: signWebhookPayload(otherBody, 'whsec_not_the_destinations'), reason: /No v1 signature/ },
        { body: staleBody, signature: signWebhookPayload(staleBody, fake.webhooks.secrets, Math.floor(Date.now() / 1000) - 3600), reason: /beyond the tolerance of 300 s/ },
      ];
      for (const { body, signature, reason } of refused) {
        const response = await request(url).post(HOOK).set('content-type', 'application/json').set('stripe-signature', signature).send(body);
        expect(response.status).toBe(400);
        expect(response.body).toMatchObject({ error: { code: 'ERR_METER_WEBHOOK_SIGNATURE', message: expect.stringMatching(reason) as string } });
      }
      // The genuine delivery, last: once its work is done, the refused ones' would have been fetched before it.
      await request(url).post(HOOK).set('content-type', 'application/json; charset=utf-8').set('stripe-signature', delivery.signature).send(delivery.body).expect(200, { received: true });
      await until(() => errors.length > 0, 'the genuine delivery to be processed');
      expect(eventFetches()).toEqual([`/v2/core/events/${event.id}`]);
      expect(errors).toEqual([expect.any(MeterRejectedEventError)]);
    } finally {
      await app.close();
    }
  });

  it('refuses to verify a re-parsed body when the app was created without rawBody: 400 and a coded error in onError', async () => {
    const app = await createApp({ platform, rawBody: false });
    try {
      const url = await listen(app);
      const delivery = await rejectedDelivery();
      const response = await request(url).post(HOOK).set('content-type', 'application/json').set('stripe-signature', delivery.signature).send(delivery.body);
      expect(response.status).toBe(400);
      expect(response.body).toMatchObject({ error: { code: 'ERR_METER_WEBHOOK_EVENT', message: expect.stringContaining('{ rawBody: true }') as string } });
      expect(errors).toEqual([expect.any(MeterWebhookError)]);
      expect(errors[0]).toMatchObject({ code: 'ERR_METER_WEBHOOK_EVENT', message: expect.stringContaining('rawBody: true') as string });
      expect(eventFetches()).toEqual([]);
    } finally {
      await app.close();
    }
  });

  it('registers the controller at the path forRootAsync declares, with the secrets its factory returns', async () => {
    const metering = MeteringModule.forRootAsync({
      webhook: { path: HOOK },
      useFactory: () => Promise.resolve({ reporter, verifyMeters: 'off' as const, webhook: { secrets: fake.webhooks.secrets } }),
    });
    const app = await createApp({ platform, metering });
    try {
      const url = await listen(app);
      fake.webhooks.setUrl(`${url}${HOOK}`);
      reporter.report({ eventName: 'api_requests', customerId: 'cus_bob' });
      await reporter.flush();
      const [delivery] = await fake.webhooks.flush();
      expect(delivery?.status).toBe(200);
      await until(() => errors.length > 0, 'the rejected event to reach onError');
      expect(errors[0]).toMatchObject({ code: 'ERR_METER_EVENT_REJECTED', customerId: 'cus_bob' });
    } finally {
      await app.close();
    }
  });

  it("stops bootstrap with verifyMeters 'fail', listing a missing meter and a payload-key mismatch of the routes' meters", async () => {
    const app = await createApp({ platform, options: { verifyMeters: 'fail' } });
    try {
      const failure = await app.init().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(MeterVerifyError);
      const problems = (failure as MeterVerifyError).problems.map((p) => [p.eventName, p.code]);
      expect(problems).toEqual(expect.arrayContaining([['missing_meter', 'meter_missing'], ['tokens', 'value_key_mismatch']]));
      // api_requests has a meter that reads the reporter's keys.
      expect(problems.filter(([name]) => name === 'api_requests')).toEqual([]);
      expect((failure as MeterVerifyError).message).toMatch(/\[meter_missing\].*"missing_meter"/);
      expect((failure as MeterVerifyError).message).toMatch(/\[value_key_mismatch\].*"amount"/);
    } finally {
      await app.close();
    }
  });

  it("logs each problem with verifyMeters 'warn' and starts anyway; 'off' asks Stripe nothing", async () => {
    const warned = await createApp({ platform, options: { verifyMeters: 'warn' } });
    try {
      await init(warned);
      const result = await warned.get(MeteringVerdict).ready();
      expect(result?.ok).toBe(false);
      expect(warnings).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ code: 'WARN_METER_VERIFY_PROBLEM', problem: 'meter_missing', eventName: 'missing_meter' }),
          expect.objectContaining({ code: 'WARN_METER_VERIFY_PROBLEM', problem: 'value_key_mismatch', eventName: 'tokens' }),
        ]),
      );
      await request(warned.getHttpServer()).get('/work').set('x-api-key', 'key_alice').expect(200);
    } finally {
      await warned.close();
    }
    fake.reset();
    const off = await createApp({ platform, options: { verifyMeters: 'off' } });
    try {
      await init(off);
      await expect(off.get(MeteringVerdict).ready()).resolves.toBeUndefined();
      expect(fake.requests().filter((r) => r.path.startsWith('/v1/billing/meters'))).toEqual([]);
    } finally {
      await off.close();
    }
  });
});

describe('MeteringModule webhook options', () => {
  it('refuses a webhook the module cannot serve, naming the option', async () => {
    expect(() => MeteringModule.forRoot({ reporter, webhook: { path: '', secrets: 'whsec_x' } })).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_OPTION', option: 'webhook.path' }) as Error);
    const compile = (metering: DynamicModule): Promise<unknown> => Test.createTestingModule({ imports: [metering] }).compile();
    await expect(compile(MeteringModule.forRoot({ reporter, webhook: { secrets: [] } }))).rejects.toMatchObject({ option: 'webhook.secrets' });
    await expect(compile(MeteringModule.forRoot({ reporter, webhook: { secrets: 'whsec_x', toleranceSeconds: 0 } }))).rejects.toMatchObject({ option: 'webhook.toleranceSeconds' });
    await expect(compile(MeteringModule.forRoot({ reporter, webhook: { secrets: 'whsec_x', tolerance: 5 } as never }))).rejects.toMatchObject({ option: 'webhook.tolerance' });
    await expect(compile(MeteringModule.forRoot({ reporter, verifyMeters: 'loud' as never }))).rejects.toMatchObject({ option: 'verifyMeters' });
    // forRootAsync: the controller is declared before the factory runs, so the factory alone cannot add one.
    await expect(compile(MeteringModule.forRootAsync({ useFactory: () => ({ reporter, webhook: { secrets: 'whsec_x' } }) }))).rejects.toMatchObject({ option: 'webhook' });
    await expect(compile(MeteringModule.forRootAsync({ webhook: {}, useFactory: () => ({ reporter }) }))).rejects.toMatchObject({ option: 'webhook' });
    await expect(compile(MeteringModule.forRootAsync({ webhook: { path: '/a' }, useFactory: () => ({ reporter, webhook: { path: '/b', secrets: 'whsec_x' } }) }))).rejects.toMatchObject({ option: 'webhook.path' });
  });
});
