// OpenTelemetry metrics: recorded on the given provider, nothing without @opentelemetry/api or when disabled.
import { MeterConfigError, MeterReporter } from '@metered/core';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';

const KEY = 'sk_test_metrics';

describe('metrics', () => {
  it('records nothing and asks no provider for a meter when disabled', async () => {
    const getMeter = jest.fn();
    const reporter = new MeterReporter({ apiKey: KEY, metrics: { enabled: false, meterProvider: { getMeter } } });
    await reporter.close({ timeoutMs: 0 });
    expect(getMeter).not.toHaveBeenCalled();
  });

  it('observes the counters of stats() on the given provider, up to the outcome of close()', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    const reporter = new MeterReporter({ apiKey: KEY, apiBaseUrl: 'http://127.0.0.1:9', meterEventsBaseUrl: 'http://127.0.0.1:9', metrics: { meterProvider } });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_2' });
    const { resourceMetrics } = await reader.collect();
    const metrics = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics);
    const value = (name: string): unknown => metrics.find((m) => m.descriptor.name === name)?.dataPoints[0]?.value;
    expect(value('metered.events.enqueued')).toBe(2);
    expect(value('metered.queue.depth')).toBe(2);
    await reporter.close({ timeoutMs: 0 });
    // The last collection after close() still shows its outcome: the shutdown drops of the two events.
    const after = await reader.collect();
    const dropped = after.resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).find((m) => m.descriptor.name === 'metered.events.dropped');
    expect(dropped?.dataPoints.find((p) => p.attributes.reason === 'shutdown')?.value).toBe(2);
    await meterProvider.shutdown();
  });

  it('is a no-op when @opentelemetry/api is not installed (an optional peer)', async () => {
    jest.resetModules();
    jest.doMock('@opentelemetry/api', () => {
      throw new Error("Cannot find module '@opentelemetry/api'");
    });
    const { MeterReporter: Isolated } = jest.requireActual<typeof import('@metered/core')>('@metered/core');
    const reporter = new Isolated({ apiKey: KEY });
    expect(reporter.report({ eventName: 'api_requests', customerId: 'cus_1' })).toMatch(/^mtr_/);
    await reporter.close({ timeoutMs: 0 });
    jest.dontMock('@opentelemetry/api');
  });

  it('refuses an unknown metrics option or a provider without getMeter()', () => {
    expect(() => new MeterReporter({ apiKey: KEY, metrics: { enable: true } as never })).toThrow(expect.objectContaining({ option: 'metrics.enable' }));
    expect(() => new MeterReporter({ apiKey: KEY, metrics: { meterProvider: {} as never } })).toThrow(MeterConfigError);
  });
});
