// Which routes pay for Nest's interceptor pipeline: only those whose value reads the handler's result.
import 'reflect-metadata';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { MeteringModule, MeterUsage, MeterUsageInterceptor } from '../src';
import { MeteringGuard } from '../src/metering.guard';
import { AiController, ItemsController, PacedController } from './fixtures';

function interceptorsOf(target: object): unknown[] {
  return (Reflect.getMetadata('__interceptors__', target) as unknown[] | undefined) ?? [];
}

describe('metering without a global interceptor', () => {
  it('registers a global guard and no global interceptor, so unmetered and static routes pay no rxjs pipeline', () => {
    const module = MeteringModule.forRoot({ reporter: { apiKey: 'sk_test_x' } });
    const tokens = (module.providers ?? []).map((provider) => (typeof provider === 'object' && 'provide' in provider ? provider.provide : provider));
    expect(tokens).toContain(APP_GUARD);
    expect(tokens).not.toContain(APP_INTERCEPTOR);
    expect(module.providers).toContainEqual({ provide: APP_GUARD, useExisting: MeteringGuard });
  });

  it('puts the interceptor on a route only when its value reads the handler result', () => {
    expect(interceptorsOf(AiController.prototype.complete)).toEqual([MeterUsageInterceptor]);
    expect(interceptorsOf(AiController.prototype.stream)).toEqual([MeterUsageInterceptor]);
    expect(interceptorsOf(ItemsController.prototype.list)).toEqual([]);
    expect(interceptorsOf(ItemsController)).toEqual([]);
    expect(interceptorsOf(PacedController.prototype.chunks)).toEqual([]);
  });

  it('puts it on a controller whose @MeterUsage() value is a function, and on a route billing several meters when one reads the result', () => {
    @MeterUsage({ value: (_context, result: { n: number }) => result.n })
    class CountingController {}
    class MetersController {
      @MeterUsage([{ eventName: 'a', value: 2 }, { eventName: 'b' }])
      fixed(): void {}

      @MeterUsage([{ eventName: 'a' }, { eventName: 'b', value: (_context, result: { n: number }) => result.n }])
      fromResult(): void {}
    }
    expect(interceptorsOf(CountingController)).toEqual([MeterUsageInterceptor]);
    expect(interceptorsOf(MetersController.prototype.fixed)).toEqual([]);
    expect(interceptorsOf(MetersController.prototype.fromResult)).toEqual([MeterUsageInterceptor]);
  });
});
