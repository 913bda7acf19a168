// Child process: a NestJS hello-world on platform-express or platform-fastify, bare or with @MeterUsage().
// Runs under tsx, which does not emit decorator metadata: the controllers take no constructor
// parameters, and @metered/nestjs comes from its tsc-built dist, which carries its own metadata.
import 'reflect-metadata';
import { MeterReporter, MeterUsage, MeterUsageInterceptor, MeteringModule } from '@metered/nestjs';
import { Controller, Get, Injectable, Module } from '@nestjs/common';
import type { CallHandler, ExecutionContext, INestApplication, NestInterceptor } from '@nestjs/common';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import type { Observable } from 'rxjs';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { LoggerModule } from 'nestjs-pino';
import pino from 'pino';
import { childConfig, serveParent } from '../lib/proc';
import { profilerHandlers } from '../lib/profiler';
import type { FakeReady } from './fake-stripe';
import { BENCH_CUSTOMER, BENCH_EVENT, LOG_SINK, SERVER_HOST, cpuMs, reporterOptions } from './shared';
import type { Delivery, ServerConfig, ServerReady } from './shared';

@Controller()
class BareController {
  @Get('hello')
  hello(): string {
    return 'Hello World!';
  }
}

@Controller()
class MeteredController {
  @MeterUsage(BENCH_EVENT)
  @Get('hello')
  hello(): string {
    return 'Hello World!';
  }
}

@Module({ controllers: [BareController] })
class BareModule {}

@Injectable()
class NoopInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}

@Module({ controllers: [BareController], providers: [{ provide: APP_INTERCEPTOR, useClass: NoopInterceptor }] })
class NoopInterceptorModule {}

/** nestjs-pino with its defaults (pino-http on every route), logging to LOG_SINK. */
@Module({ imports: [LoggerModule.forRoot({ pinoHttp: { logger: pino(pino.destination({ dest: LOG_SINK, sync: false })) } })], controllers: [BareController] })
class PinoModule {}

function meteredModule(fake: FakeReady): new () => unknown {
  @Module({
    imports: [MeteringModule.forRoot({ reporter: reporterOptions(fake), customer: () => BENCH_CUSTOMER })],
    controllers: [MeteredController],
  })
  class MeteredModule {}
  return MeteredModule;
}

async function main(): Promise<void> {
  const { kind, variant, fake } = childConfig<ServerConfig>();
  const metered = variant === 'metered';
  if (variant === 'naive') throw new Error('the naive variant is an Express app only');
  const root = metered ? meteredModule(fake) : variant === 'noop-interceptor' ? NoopInterceptorModule : variant === 'nestjs-pino' ? PinoModule : BareModule;
  if (root === BareModule && variant !== 'bare') throw new Error(`${variant} is an Express variant`);
  const adapter = kind === 'nest-fastify' ? new FastifyAdapter() : new ExpressAdapter();
  const app: INestApplication = await NestFactory.create(root, adapter, { logger: false });
  await app.listen(0, SERVER_HOST);
  const port = new URL(await app.getUrl()).port;
  const ready: ServerReady = { url: `http://${SERVER_HOST}:${port}/hello` };
  serveParent(ready, {
    cpuMs,
    ...profilerHandlers(),
    flush: async (): Promise<Delivery> => {
      if (!metered) return { delivered: 0, dropped: 0, failed: 0 };
      await app.get(MeterUsageInterceptor).flush();
      const stats = app.get(MeterReporter).stats();
      return { delivered: stats.delivered, dropped: stats.dropped.total, failed: stats.failed };
    },
    close: () => app.close(),
  });
}

void main();
