// Builds the example app (used by main.ts and by the test).
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplication, LogLevel } from '@nestjs/common';
import type { MeterReporterOptions } from '@metered/core';
import { AppModule } from './app.module';

export async function createApp(reporter: MeterReporterOptions, logger: LogLevel[] | false = ['log', 'warn', 'error']): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule.register(reporter), { logger });
  // SIGTERM/SIGINT run app.close(): MeteringModule then delivers what is still queued.
  app.enableShutdownHooks();
  return app;
}
