// The example's root module: metering configured once, an API-key guard, three controllers.
import { Module } from '@nestjs/common';
import type { DynamicModule } from '@nestjs/common';
import type { MeterReporter, MeterReporterOptions } from '@metered/core';
import { MeteringModule } from '@metered/nestjs';
import { API_CLIENTS } from './api-key.guard';
import { CompletionsController } from './completions.controller';
import { loadClients } from './customers';
import { HealthController } from './health.controller';
import { ReportsController } from './reports.controller';

@Module({})
export class AppModule {
  /** `reporter`: options to create one (the app), or a reporter to use (a test's `createTestReporter()`). */
  static register(reporter: MeterReporter | MeterReporterOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [MeteringModule.forRoot({ reporter, shutdownTimeoutMs: 5000 })],
      controllers: [ReportsController, CompletionsController, HealthController],
      providers: [{ provide: API_CLIENTS, useValue: loadClients() }],
    };
  }
}
