// MeteringModule: configured once (forRoot / forRootAsync), global, registers the interceptor and the injectable reporter.
import { MeterConfigError, MeterReporter, redactSecrets, withTimeout } from '@metered/core';
import { Global, Inject, Logger, Module } from '@nestjs/common';
import type { DynamicModule, OnApplicationShutdown, Provider } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { MeterUsageInterceptor } from './meter-usage.interceptor';
import { MeteringGuard } from './metering.guard';
import { declaredWebhookPath, verdictModuleParts } from './metering-verdict';
import { METERING_CONFIG, METERING_MODULE_OPTIONS } from './metering.constants';
import { resolveMeteringOptions } from './metering.options';
import type { ResolvedMeteringConfig } from './metering.options';
import type { MeteringModuleAsyncOptions, MeteringModuleOptions, MeteringOptionsFactory } from './types';

const SHARED_PROVIDERS: Provider[] = [
  { provide: METERING_CONFIG, useFactory: resolveMeteringOptions, inject: [METERING_MODULE_OPTIONS] },
  { provide: MeterReporter, useFactory: (config: ResolvedMeteringConfig) => config.reporter, inject: [METERING_CONFIG] },
  MeterUsageInterceptor,
  MeteringGuard,
  // A guard, not a global interceptor: Nest runs guards without its rxjs pipeline, so routes metered
  // from the guard pay only for metering. Routes whose value reads the handler's result carry the
  // interceptor themselves (@MeterUsage() adds it), and only they pay for it (docs/BENCHMARKS.md).
  { provide: APP_GUARD, useExisting: MeteringGuard },
];

// The config too: the interceptor @MeterUsage() puts on a route is created in that route's module.
const EXPORTS = [MeterReporter, MeterUsageInterceptor, METERING_CONFIG];

function asyncOptionsProviders(options: MeteringModuleAsyncOptions): Provider[] {
  const given = (['useFactory', 'useClass', 'useExisting'] as const).filter((key) => options[key] !== undefined);
  if (given.length !== 1) {
    throw new MeterConfigError('forRootAsync', `needs exactly one of useFactory, useClass or useExisting, got ${given.length === 0 ? 'none' : given.join(' and ')}`);
  }
  if (options.useFactory !== undefined) {
    return [{ provide: METERING_MODULE_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] }];
  }
  const factoryToken = options.useClass ?? options.useExisting!;
  const providers: Provider[] = [
    {
      provide: METERING_MODULE_OPTIONS,
      useFactory: (factory: MeteringOptionsFactory) => factory.createMeteringOptions(),
      inject: [factoryToken],
    },
  ];
  if (options.useClass !== undefined) providers.push({ provide: options.useClass, useClass: options.useClass });
  return providers;
}

/**
 * Meters the application's HTTP routes: one Stripe meter event per billable request to a route
 * decorated with `@MeterUsage()`, reported after the response is sent. Global: import it once, in the
 * root module. `MeterReporter` is injectable everywhere for manual reporting.
 *
 * On shutdown (`app.close()`, or a signal with `enableShutdownHooks()`), it waits for requests still
 * being metered, then closes the reporter it created (or flushes the one it was given).
 */
@Global()
@Module({})
export class MeteringModule implements OnApplicationShutdown {
  private readonly logger = new Logger('MeteringModule');

  constructor(
    @Inject(METERING_CONFIG) private readonly config: ResolvedMeteringConfig,
    private readonly interceptor: MeterUsageInterceptor,
  ) {}

  /**
   * Configures metering with static options.
   *
   * @example
   * ```ts
   * @Module({
   *   imports: [MeteringModule.forRoot({ reporter: { apiKey: process.env.STRIPE_SECRET_KEY! } })],
   * })
   * export class AppModule {}
   * ```
   */
  static forRoot(options: MeteringModuleOptions): DynamicModule {
    const verdict = verdictModuleParts(declaredWebhookPath((options as Partial<MeteringModuleOptions> | null | undefined)?.webhook));
    return {
      module: MeteringModule,
      global: true,
      imports: verdict.imports,
      controllers: verdict.controllers,
      providers: [{ provide: METERING_MODULE_OPTIONS, useValue: options }, ...SHARED_PROVIDERS, ...verdict.providers],
      exports: [...EXPORTS, ...verdict.exports],
    };
  }

  /**
   * Configures metering with options built by a factory (from `ConfigService`, a secrets store, …).
   *
   * @example
   * ```ts
   * MeteringModule.forRootAsync({
   *   imports: [ConfigModule],
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({ reporter: { apiKey: config.getOrThrow('STRIPE_SECRET_KEY') } }),
   * })
   * ```
   */
  static forRootAsync(options: MeteringModuleAsyncOptions): DynamicModule {
    const providers = asyncOptionsProviders(options);
    const verdict = verdictModuleParts(declaredWebhookPath(options.webhook));
    return {
      module: MeteringModule,
      global: true,
      imports: [...(options.imports ?? []), ...verdict.imports],
      controllers: verdict.controllers,
      providers: [...providers, ...SHARED_PROVIDERS, ...verdict.providers],
      exports: [...EXPORTS, ...verdict.exports],
    };
  }

  /** Delivers what is queued before the process goes: never throws, bounded by `shutdownTimeoutMs`. */
  async onApplicationShutdown(): Promise<void> {
    const { reporter, ownsReporter, shutdownTimeoutMs } = this.config;
    const deadline = Date.now() + shutdownTimeoutMs;
    try {
      if (!(await this.interceptor.drain(shutdownTimeoutMs))) {
        this.logger.warn(`Requests still being metered after ${shutdownTimeoutMs} ms were left unreported`);
      }
      const remaining = Math.max(1, deadline - Date.now());
      if (ownsReporter) await reporter.close({ timeoutMs: remaining });
      else await withTimeout(() => reporter.flush(), remaining, 'flushing the meter reporter');
    } catch (error) {
      this.logger.error(`Metering shutdown failed: ${redactSecrets(error instanceof Error ? error.message : String(error))}`);
    }
  }
}
