// Child process: a NestJS hello-world on platform-express or platform-fastify, bare or with @MeterUsage().
// Besides the shared variants, two for taking metering apart (started by name, e.g. from a breakdown):
// `noop-guard`, a bare app with a global guard that lets everything through (the floor of a guard), and
// `metered-no-delivery`, @MeterUsage() with a reporter whose report() only counts: the adapter's own
// cost, without the reporter's intake and delivery. `nestjsFrom` (a directory whose node_modules holds
// another build of @metered/nestjs and @metered/core, e.g. the committed code before a change) meters
// with that build instead, so that a change is measured head to head against what it replaces.
// Compiled by tsc with decorator metadata, like every role (bench/lib/proc.ts); the controllers still
// take no constructor parameters, so the file also runs under tsx's loader (`runtime: 'tsx'`), which
// emits none. @metered/nestjs comes from its tsc-built dist, which carries its own metadata.
import 'reflect-metadata';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as here from '@metered/nestjs';
import { Controller, Get, Injectable, Module } from '@nestjs/common';
import type { CallHandler, CanActivate, ExecutionContext, INestApplication, NestInterceptor } from '@nestjs/common';
import type { MeterEventInput } from '@metered/core';
import { APP_GUARD, APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import type { Observable } from 'rxjs';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { LoggerModule } from 'nestjs-pino';
import pino from 'pino';
import { childConfig, serveParent } from '../lib/proc';
import { profilerHandlers } from '../lib/profiler';
import type { FakeReady } from './fake-stripe';
import { BENCH_CUSTOMER, BENCH_EVENT, LOG_SINK, SERVER_HOST, cpuMs, isMeteredVariant, placeDeliveryWorker, reporterOptions, reporterOptionsFor } from './shared';
import type { Delivery, ServerConfig, ServerReady, ServerVariant } from './shared';

@Controller()
class BareController {
  @Get('hello')
  hello(): string {
    return 'Hello World!';
  }
}

type Metering = Pick<typeof here, 'MeterReporter' | 'MeterUsage' | 'MeterUsageInterceptor' | 'MeteringModule'>;

function meteringFrom(nestjsFrom: string | undefined): Metering {
  if (nestjsFrom === undefined) return here;
  return createRequire(path.join(path.resolve(nestjsFrom), 'index.js'))('@metered/nestjs') as Metering;
}

function meteredController(lib: Metering): new () => unknown {
  @Controller()
  class MeteredController {
    @lib.MeterUsage(BENCH_EVENT)
    @Get('hello')
    hello(): string {
      return 'Hello World!';
    }
  }
  return MeteredController;
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

@Injectable()
class NoopGuard implements CanActivate {
  canActivate(): true {
    return true;
  }
}

@Module({ controllers: [BareController], providers: [{ provide: APP_GUARD, useClass: NoopGuard }] })
class NoopGuardModule {}

interface Counting {
  counted: number;
}

/** A reporter that counts what it is given and delivers nothing: what metering costs before the reporter's own work. */
function countingReporter(lib: Metering, fake: FakeReady): here.MeterReporter & Counting {
  class CountingReporter extends lib.MeterReporter implements Counting {
    counted = 0;

    override report(input: MeterEventInput): string {
      this.counted += 1;
      return input.identifier ?? 'counted';
    }
  }
  return new CountingReporter(reporterOptions(fake));
}

type NestVariant = ServerVariant | 'noop-guard' | 'metered-no-delivery';

/** nestjs-pino with its defaults (pino-http on every route), logging to LOG_SINK. */
@Module({ imports: [LoggerModule.forRoot({ pinoHttp: { logger: pino(pino.destination({ dest: LOG_SINK, sync: false })) } })], controllers: [BareController] })
class PinoModule {}

function meteredModule(lib: Metering, fake: FakeReady, variant: NestVariant, counting: here.MeterReporter | undefined): new () => unknown {
  @Module({
    imports: [lib.MeteringModule.forRoot({ reporter: counting ?? reporterOptionsFor(variant, fake), customer: () => BENCH_CUSTOMER })],
    controllers: [meteredController(lib)],
  })
  class MeteredModule {}
  return MeteredModule;
}

async function main(): Promise<void> {
  const { kind, variant, fake, nestjsFrom, workerCpus } = childConfig<Omit<ServerConfig, 'variant'> & { variant: NestVariant; nestjsFrom?: string }>();
  const lib = meteringFrom(nestjsFrom);
  const counting = variant === 'metered-no-delivery' ? countingReporter(lib, fake) : undefined;
  const metered = isMeteredVariant(variant) || counting !== undefined;
  if (variant === 'naive') throw new Error('the naive variant is an Express app only');
  const others: Partial<Record<NestVariant, new () => unknown>> = { 'noop-interceptor': NoopInterceptorModule, 'noop-guard': NoopGuardModule, 'nestjs-pino': PinoModule };
  const root = metered ? meteredModule(lib, fake, variant, counting) : (others[variant] ?? BareModule);
  if (root === BareModule && variant !== 'bare') throw new Error(`${variant} is an Express variant`);
  const adapter = kind === 'nest-fastify' ? new FastifyAdapter() : new ExpressAdapter();
  const app: INestApplication = await NestFactory.create(root, adapter, { logger: false });
  await app.listen(0, SERVER_HOST);
  if (variant === 'metered-worker-spare') await placeDeliveryWorker(workerCpus);
  const port = new URL(await app.getUrl()).port;
  const ready: ServerReady = { url: `http://${SERVER_HOST}:${port}/hello` };
  serveParent(ready, {
    cpuMs,
    ...profilerHandlers(),
    flush: async (): Promise<Delivery> => {
      if (!metered) return { delivered: 0, dropped: 0, failed: 0 };
      await app.get(lib.MeterUsageInterceptor).flush();
      if (counting !== undefined) return { delivered: counting.counted, dropped: 0, failed: 0 };
      const stats = app.get(lib.MeterReporter).stats();
      return { delivered: stats.delivered, dropped: stats.dropped.total, failed: stats.failed };
    },
    close: () => app.close(),
  });
}

void main();
