// Stripe's verdict in Nest: the webhook options checked once, and the meter check run while the application bootstraps.
import { MeterConfigError, checkVerifyMetersMode, createMeterErrorWebhook, resolveWebhookSecrets, verifyAtStartup } from '@metered/core';
import type { MeterErrorWebhook, VerifyMetersMode, VerifyMetersResult } from '@metered/core';
import { Inject, Injectable } from '@nestjs/common';
import type { DynamicModule, OnApplicationBootstrap, Provider, Type } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryModule, DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { METER_USAGE_METADATA, METERING_CONFIG, METERING_MODULE_OPTIONS, SKIP_METERING_METADATA } from './metering.constants';
import type { ResolvedMeteringConfig } from './metering.options';
import type { RouteMetering } from './meter-usage.decorator';
import { METER_WEBHOOK, createMeterWebhookController } from './meter-webhook.controller';
import type { MeteringModuleOptions, MeteringWebhookOptions } from './types';

/** Where the webhook controller listens unless `webhook.path` says otherwise (the Express router's default too). */
export const DEFAULT_WEBHOOK_PATH = '/stripe/meter-errors';

/** The verdict options parsed once: the meter check's mode and, when configured, core's webhook handler. */
export const METERING_VERDICT = Symbol('@metered/nestjs:verdict');

/** What `METERING_VERDICT` provides. */
export interface ResolvedVerdict {
  readonly verifyMeters: VerifyMetersMode;
  /** Undefined when no webhook is configured (the controller is then not registered either). */
  readonly webhook: MeterErrorWebhook | undefined;
}

const WEBHOOK_KEYS = new Set(['path', 'secrets', 'toleranceSeconds']);

/**
 * The path the webhook controller is declared at, from `forRoot({ webhook })` or `forRootAsync({ webhook })`:
 * undefined without a webhook. Checked when the module is declared, as Nest registers controllers before any factory runs.
 */
export function declaredWebhookPath(webhook: unknown, option = 'webhook'): string | undefined {
  if (webhook === undefined) return undefined;
  if (webhook === null || typeof webhook !== 'object') throw new MeterConfigError(option, 'must be an object: { path?, secrets, toleranceSeconds? }');
  const path: unknown = (webhook as { path?: unknown }).path ?? DEFAULT_WEBHOOK_PATH;
  if (typeof path !== 'string' || path.trim().length === 0) throw new MeterConfigError(`${option}.path`, `must be a non-empty route path such as '${DEFAULT_WEBHOOK_PATH}'`);
  return path;
}

function resolveWebhook(options: MeteringModuleOptions, config: ResolvedMeteringConfig, declaredPath: string | undefined): MeterErrorWebhook | undefined {
  const webhook: unknown = options.webhook;
  if (webhook === undefined) {
    if (declaredPath === undefined) return undefined;
    throw new MeterConfigError('webhook', `is required: forRootAsync({ webhook }) registered the webhook controller at ${declaredPath}, so the options factory must return webhook: { secrets }`);
  }
  if (declaredPath === undefined) {
    throw new MeterConfigError('webhook', 'needs forRootAsync({ webhook: { path? }, useFactory, … }): Nest registers controllers before the options factory runs, so the webhook is declared there');
  }
  if (webhook === null || typeof webhook !== 'object') throw new MeterConfigError('webhook', 'must be an object: { path?, secrets, toleranceSeconds? }');
  for (const key of Object.keys(webhook)) {
    if (!WEBHOOK_KEYS.has(key)) throw new MeterConfigError(`webhook.${key}`, `is not an option of the webhook (known: ${[...WEBHOOK_KEYS].join(', ')})`);
  }
  const given = webhook as MeteringWebhookOptions;
  if (given.path !== undefined && given.path !== declaredPath) {
    throw new MeterConfigError('webhook.path', `is ${JSON.stringify(given.path)} but forRootAsync({ webhook }) declared the controller at ${declaredPath}: give the path to forRootAsync() only`);
  }
  const secrets = resolveWebhookSecrets(given.secrets, 'webhook.secrets');
  const toleranceSeconds: unknown = given.toleranceSeconds;
  if (toleranceSeconds !== undefined && (typeof toleranceSeconds !== 'number' || !Number.isFinite(toleranceSeconds) || toleranceSeconds <= 0)) {
    throw new MeterConfigError('webhook.toleranceSeconds', 'must be a positive number of seconds');
  }
  return createMeterErrorWebhook({ reporter: config.reporter, secrets, toleranceSeconds });
}

/** Checks the verdict options; throws `MeterConfigError` naming the bad one. */
export function resolveVerdict(options: MeteringModuleOptions, config: ResolvedMeteringConfig, declaredPath: string | undefined): ResolvedVerdict {
  return Object.freeze({
    verifyMeters: checkVerifyMetersMode(options.verifyMeters),
    webhook: resolveWebhook(options, config, declaredPath),
  });
}

type Handler = (...args: never[]) => unknown;

/**
 * Runs the meter check once the application has bootstrapped (`app.init()`, or `listen()` which calls it), over
 * the module's `eventName` where routes use it and every event name of every `@MeterUsage()` on a route.
 * `'fail'` makes `init()` reject with `MeterVerifyError` listing every problem; `'warn'` checks in the
 * background, so start-up never waits on Stripe, and logs each problem through the reporter's logger.
 */
@Injectable()
export class MeteringVerdict implements OnApplicationBootstrap {
  private check: Promise<VerifyMetersResult | undefined> = Promise.resolve(undefined);

  constructor(
    @Inject(METERING_VERDICT) private readonly verdict: ResolvedVerdict,
    @Inject(METERING_CONFIG) private readonly config: ResolvedMeteringConfig,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(MetadataScanner) private readonly scanner: MetadataScanner,
    @Inject(Reflector) private readonly reflector: Reflector,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const { verifyMeters } = this.verdict;
    if (verifyMeters === 'off') return;
    const check = verifyAtStartup(this.config.reporter, this.eventNames(), verifyMeters);
    if (verifyMeters === 'fail') {
      this.check = check;
      await check;
      return;
    }
    // verifyAtStartup logs in 'warn' mode and never rejects there; the catch only guards a reporter double without a logger.
    this.check = check.catch(() => undefined);
  }

  /**
   * The start-up meter check's result: undefined with `verifyMeters: 'off'`, when no route is metered, or when
   * Stripe could not be read in `'warn'` mode. Settles once the check is done (await it before relying on the warnings).
   */
  ready(): Promise<VerifyMetersResult | undefined> {
    return this.check;
  }

  /** Every event name a route of the application bills, in the order the routes are found. */
  eventNames(): string[] {
    const names = new Set<string>();
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as Type<unknown> | undefined;
      if (typeof controller !== 'function') continue;
      const prototype = controller.prototype as Record<string, unknown>;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[method];
        // Only route handlers are billed; a helper method carrying no route metadata is not.
        if (typeof handler !== 'function' || Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
        for (const name of this.routeEventNames(handler as Handler, controller)) names.add(name);
      }
    }
    return [...names];
  }

  // The same precedence as the interceptor: the method's decorators, then the controller's, then meterAllRoutes.
  private routeEventNames(handler: Handler, controller: Type<unknown>): readonly string[] {
    for (const target of [handler, controller]) {
      if (this.reflector.get<boolean | undefined>(SKIP_METERING_METADATA, target) === true) return [];
      const metering = this.reflector.get<RouteMetering | undefined>(METER_USAGE_METADATA, target);
      if (metering === undefined) continue;
      return metering.meters?.map((meter) => meter.eventName) ?? [metering.eventName ?? this.config.eventName];
    }
    return this.config.meterAllRoutes ? [this.config.eventName] : [];
  }
}

/** What `forRoot` / `forRootAsync` add to the module for Stripe's verdict. */
export function verdictModuleParts(declaredPath: string | undefined): Required<Pick<DynamicModule, 'imports' | 'providers' | 'controllers' | 'exports'>> {
  const providers: Provider[] = [
    {
      provide: METERING_VERDICT,
      useFactory: (options: MeteringModuleOptions, config: ResolvedMeteringConfig) => resolveVerdict(options, config, declaredPath),
      inject: [METERING_MODULE_OPTIONS, METERING_CONFIG],
    },
    { provide: METER_WEBHOOK, useFactory: (verdict: ResolvedVerdict) => verdict.webhook, inject: [METERING_VERDICT] },
    MeteringVerdict,
  ];
  return {
    imports: [DiscoveryModule],
    providers,
    controllers: declaredPath === undefined ? [] : [createMeterWebhookController(declaredPath)],
    exports: [MeteringVerdict],
  };
}
