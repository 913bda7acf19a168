// End-to-end: MeteringModule.forRoot({ account }) bills each request under the connected account it resolves, on Express and Fastify.
import 'reflect-metadata';
import { MeterConfigError } from '@metered/core';
import type { MeterError } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { Body, Controller, Get, Post, UseGuards } from '@nestjs/common';
import type { ExecutionContext, INestApplication } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { MeteringModule, MeterUsage } from '../src';
import type { MeteringModuleOptions } from '../src';
import { resolveMeteringOptions } from '../src/metering.options';
import { ApiKeyGuard, fakeReporterOptions, PLATFORMS, settle } from './fixtures';
import type { Platform } from './fixtures';

// Server-side tenancy: which connected account each customer belongs to (a client never names it).
const ACCOUNT_OF_CUSTOMER: Readonly<Record<string, string>> = { cus_alice: 'acct_1Alice', cus_bob: 'acct_2Bob' };

function accountOf(context: ExecutionContext): string | undefined {
  const customer = context.switchToHttp().getRequest<{ user?: { stripeCustomerId?: string } }>().user?.stripeCustomerId;
  return customer === undefined ? undefined : ACCOUNT_OF_CUSTOMER[customer];
}

/** A route with a value known up front (metered from the guard) and one whose value reads the result (the interceptor). */
@Controller('tenant')
@UseGuards(ApiKeyGuard)
class TenantController {
  @Get('static')
  @MeterUsage('api_requests')
  fixed(): { ok: true } {
    return { ok: true };
  }

  @Post('tokens')
  @MeterUsage('tokens', { value: (_context, result: { tokens: number }) => result.tokens })
  tokens(@Body() body: { tokens: number }): { tokens: number } {
    return { tokens: body.tokens };
  }
}

let fake: FakeStripe;

beforeAll(async () => {
  fake = await startFakeStripe({ meters: ['api_requests', 'tokens'] });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
});

async function startApp(platform: Platform, options: Partial<MeteringModuleOptions>, errors: MeterError[]): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [MeteringModule.forRoot({ reporter: fakeReporterOptions(fake, { onError: (error: MeterError) => errors.push(error) }), ...options })],
    controllers: [TenantController],
  }).compile();
  const app =
    platform === 'express' ? moduleRef.createNestApplication({ logger: false }) : moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
  await app.init();
  if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return app;
}

describe.each(PLATFORMS)('connected accounts on platform-%s', (platform) => {
  it.each(['stream', 'direct'] as const)('bills each request under the account the resolver names, on guard- and interceptor-metered routes (%s mode)', async (mode) => {
    const errors: MeterError[] = [];
    const app = await startApp(platform, { reporter: fakeReporterOptions(fake, { mode, onError: (error: MeterError) => errors.push(error) }), account: accountOf }, errors);
    try {
      const server = app.getHttpServer();
      await request(server).get('/tenant/static').set('x-api-key', 'key_alice').expect(200);
      await request(server).post('/tenant/tokens').set('x-api-key', 'key_alice').send({ tokens: 40 }).expect(201);
      await request(server).get('/tenant/static').set('x-api-key', 'key_bob').expect(200);
      await settle(app);
      expect(errors).toEqual([]);
      expect(fake.totals({ account: 'acct_1Alice' })).toEqual({ cus_alice: { api_requests: 1, tokens: 40 } });
      expect(fake.totals({ account: 'acct_2Bob' })).toEqual({ cus_bob: { api_requests: 1 } });
      expect(fake.totals()).toEqual({});
    } finally {
      await app.close();
    }
  });

  it('never lets a client choose the account: a Stripe-Context header sent to the app bills the platform', async () => {
    const errors: MeterError[] = [];
    const app = await startApp(platform, {}, errors);
    try {
      await request(app.getHttpServer()).get('/tenant/static').set('x-api-key', 'key_alice').set('stripe-context', 'acct_1Alice').expect(200);
      await settle(app);
      expect(fake.totals()).toEqual({ cus_alice: { api_requests: 1 } });
      expect(fake.totals({ account: 'acct_1Alice' })).toEqual({});
    } finally {
      await app.close();
    }
  });

  it('reports a resolver answer that is no acct_ id to onError and bills nothing for it', async () => {
    const errors: MeterError[] = [];
    const app = await startApp(platform, { account: () => 'cus_notAnAccount' }, errors);
    try {
      await request(app.getHttpServer()).get('/tenant/static').set('x-api-key', 'key_alice').expect(200);
      await settle(app);
      expect(errors).toEqual([expect.objectContaining({ code: 'ERR_METER_ADAPTER', cause: expect.objectContaining({ code: 'ERR_METER_INVALID_ACCOUNT' }) })]);
      expect(fake.events()).toEqual([]);
    } finally {
      await app.close();
    }
  });
});

describe('the account option', () => {
  it('is refused unless it is a function, naming the option', () => {
    const options = { reporter: { apiKey: 'sk_test_connect' }, account: 'acct_1Alice' } as unknown as MeteringModuleOptions;
    expect(() => resolveMeteringOptions(options)).toThrow(MeterConfigError);
    expect(() => resolveMeteringOptions(options)).toThrow(expect.objectContaining({ option: 'account' }));
  });
});
