// End-to-end: a route billing several meters per request, on Express and on Fastify, next to @metered/express too.
import 'reflect-metadata';
import { MeterReporter } from '@metered/core';
import type { MeterError } from '@metered/core';
import { meterUsage } from '@metered/express';
import { Body, Controller, Post, Req, UseGuards } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import request from 'supertest';
import { MeteringModule, MeterUsage, setRequestUsage } from '../src';
import type { MeteringModuleOptions } from '../src';
import { ApiKeyGuard, fakeReporterOptions, PLATFORMS, settle } from './fixtures';
import type { Platform } from './fixtures';

interface Completion {
  usage: { input: number; output: number };
}

@Controller('llm')
@UseGuards(ApiKeyGuard)
class LlmController {
  @Post('chat')
  @MeterUsage<Completion>([
    { eventName: 'input_tokens', value: (_context, result) => result.usage.input },
    { eventName: 'output_tokens', value: async (_context, result) => Promise.resolve(result.usage.output) },
    { eventName: 'llm_requests' },
  ])
  chat(@Body() body: { input: number; output: number }): Completion {
    return { usage: { input: body.input, output: body.output } };
  }

  @Post('static')
  @MeterUsage([
    { eventName: 'llm_requests', value: 1 },
    { eventName: 'input_tokens', value: 7, dimensions: { model: 'small' } },
  ])
  fixed(): { ok: true } {
    return { ok: true };
  }

  @Post('handler')
  @MeterUsage('llm_requests')
  // The request as the platform hands it (Express's, or Fastify's wrapper): metering reads either.
  handler(@Body() body: { input: number; output: number }, @Req() req: object): { ok: true } {
    setRequestUsage(req, [
      { eventName: 'input_tokens', value: body.input },
      { eventName: 'output_tokens', value: body.output },
    ]);
    return { ok: true };
  }
}

const METERS = ['input_tokens', 'output_tokens', 'llm_requests'];

let fake: FakeStripe;

beforeAll(async () => {
  fake = await startFakeStripe({ meters: METERS });
});

afterAll(async () => {
  await fake.close();
});

beforeEach(() => {
  fake.reset();
});

async function startLlmApp(platform: Platform, options: Partial<MeteringModuleOptions> = {}, configure?: (app: INestApplication) => void): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [MeteringModule.forRoot({ reporter: fakeReporterOptions(fake), ...options })],
    controllers: [LlmController],
  }).compile();
  const app =
    platform === 'express' ? moduleRef.createNestApplication({ logger: false }) : moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
  configure?.(app);
  await app.init();
  if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  return app;
}

describe.each(PLATFORMS)('several meters per request on platform-%s', (platform) => {
  it('bills every meter of @MeterUsage([...]) once per request, each with its value function', async () => {
    const app = await startLlmApp(platform);
    try {
      await request(app.getHttpServer()).post('/llm/chat').set('x-api-key', 'key_alice').send({ input: 120, output: 30 }).expect(201);
      await request(app.getHttpServer()).post('/llm/chat').set('x-api-key', 'key_bob').send({ input: 5, output: 0 }).expect(201);
      await settle(app);
      // bob's output of 0 bills nothing for that meter, and his other meters still count.
      expect(fake.totals()).toEqual({
        cus_alice: { input_tokens: 120, output_tokens: 30, llm_requests: 1 },
        cus_bob: { input_tokens: 5, llm_requests: 1 },
      });
      expect(new Set(fake.events().map((event) => event.identifier)).size).toBe(5);
    } finally {
      await app.close();
    }
  });

  it('bills each meter once across retries carrying one Idempotency-Key', async () => {
    const app = await startLlmApp(platform, { identifier: 'idempotency-key' });
    try {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        await request(app.getHttpServer()).post('/llm/chat').set('x-api-key', 'key_alice').set('idempotency-key', 'chat-7').send({ input: 10, output: 4 }).expect(201);
      }
      await settle(app);
      expect(fake.totals()).toEqual({ cus_alice: { input_tokens: 10, output_tokens: 4, llm_requests: 1 } });
      // Three requests' worth of events were sent; Stripe's deduplication collapsed the retries.
      expect(fake.events()).toHaveLength(3);
    } finally {
      await app.close();
    }
  });

  it('lets a handler bill several meters with setRequestUsage(req, [...]), over the route’s one meter', async () => {
    const app = await startLlmApp(platform);
    try {
      await request(app.getHttpServer()).post('/llm/handler').set('x-api-key', 'key_alice').send({ input: 3, output: 9 }).expect(201);
      await settle(app);
      expect(fake.totals()).toEqual({ cus_alice: { input_tokens: 3, output_tokens: 9 } });
    } finally {
      await app.close();
    }
  });

  it('refuses an empty meter list or a meter without an event name when the class is declared', () => {
    expect(() => MeterUsage([])).toThrow(expect.objectContaining({ code: 'ERR_METER_INVALID_OPTION', option: '@MeterUsage' }));
    expect(() => MeterUsage([{ eventName: 'ok' }, { eventName: '' }])).toThrow(expect.objectContaining({ option: '@MeterUsage[1].eventName' }));
    expect(() => MeterUsage([{ eventName: 'ok', valu: 3 } as never])).toThrow(expect.objectContaining({ option: '@MeterUsage[0].valu' }));
  });

  if (platform === 'express') {
    it('bills each meter once next to @metered/express, which claimed the request first (a double mount): static values, and values read from the result', async () => {
      const errors: MeterError[] = [];
      const middlewareReporter = new MeterReporter({ ...fakeReporterOptions(fake), onError: (error) => errors.push(error) });
      const metering = meterUsage({ reporter: middlewareReporter });
      const app = await startLlmApp(platform, {}, (nest) => {
        nest.use(metering);
        nest.use(metering);
      });
      try {
        await request(app.getHttpServer()).post('/llm/static').set('x-api-key', 'key_alice').expect(201);
        // Values read from the handler's result: handed over too, worked out when the middleware bills.
        await request(app.getHttpServer()).post('/llm/chat').set('x-api-key', 'key_bob').send({ input: 12, output: 4 }).expect(201);
        await settle(app);
        await metering.flush();
        expect(fake.totals()).toEqual({ cus_alice: { llm_requests: 1, input_tokens: 7 }, cus_bob: { input_tokens: 12, output_tokens: 4, llm_requests: 1 } });
        expect(fake.events().find((event) => event.eventName === 'input_tokens')?.payload).toMatchObject({ model: 'small' });
        expect(metering.stats()).toMatchObject({ metered: 2, skipped: { duplicate: 2 } });
        expect(errors).toEqual([]);
      } finally {
        await app.close();
        await middlewareReporter.close();
      }
    });
  }
});
