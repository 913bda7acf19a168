// OpenTelemetry metrics of a reporter through @opentelemetry/api, an optional peer: without it, or disabled, nothing at all is done.
import { MeterConfigError } from '../errors';
import { show } from '../config';
import type { MeterStats, MetricsMeterProvider, MetricsOptions } from '../types';

/** The instrumentation scope the reporter's metrics are recorded under. */
export const METRICS_SCOPE = '@metered/core';

/** Resolved `metrics` options. */
export interface ResolvedMetrics {
  readonly enabled: boolean;
  readonly meterProvider: MetricsMeterProvider | undefined;
}

const KNOWN = new Set(['enabled', 'meterProvider']);

/** Checks `metrics`; throws `MeterConfigError` naming the bad key. */
export function resolveMetrics(options: MetricsOptions | undefined): ResolvedMetrics {
  if (options === undefined) return Object.freeze({ enabled: true, meterProvider: undefined });
  if (options === null || typeof options !== 'object') throw new MeterConfigError('metrics', `must be an object with enabled and/or meterProvider, got ${show(options)}`);
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new MeterConfigError(`metrics.${key}`, `is not an option of metrics (known: ${[...KNOWN].join(', ')})`);
  }
  const { enabled = true, meterProvider } = options;
  if (typeof enabled !== 'boolean') throw new MeterConfigError('metrics.enabled', `must be a boolean, got ${show(enabled)}`);
  if (meterProvider !== undefined && (meterProvider === null || typeof meterProvider !== 'object' || typeof meterProvider.getMeter !== 'function')) {
    throw new MeterConfigError('metrics.meterProvider', 'must be an OpenTelemetry MeterProvider (with getMeter())');
  }
  return Object.freeze({ enabled, meterProvider });
}

// The parts of @opentelemetry/api used here, typed locally so the package builds without it.
interface Attributes {
  readonly [key: string]: string;
}
interface ObservableResult {
  observe(instrument: unknown, value: number, attributes?: Attributes): void;
}
interface OtelMeter {
  createObservableCounter(name: string, options: { description: string; unit: string }): unknown;
  createObservableGauge(name: string, options: { description: string; unit: string }): unknown;
  createHistogram(name: string, options: { description: string; unit: string; advice?: { explicitBucketBoundaries: number[] } }): { record(value: number, attributes?: Attributes): void };
  addBatchObservableCallback(callback: (result: ObservableResult) => void, observables: unknown[]): void;
  removeBatchObservableCallback(callback: (result: ObservableResult) => void, observables: unknown[]): void;
}
interface OtelApi {
  metrics: { getMeterProvider(): MetricsMeterProvider };
}

/** `@opentelemetry/api`, or undefined when it is not installed (an optional peer). */
function loadApi(): OtelApi | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded lazily: an optional peer, absent in most installs
    return require('@opentelemetry/api') as OtelApi;
  } catch {
    return undefined;
  }
}

// Latency buckets in ms: one request to Stripe is tens of ms; a batch riding out retries takes seconds to minutes.
const LATENCY_BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000];

/** What the metrics read: the reporter's counters and its open folds. */
export interface MetricsSource {
  stats(): MeterStats;
  /** Folds open in the aggregator (0 without `aggregate`). */
  openFolds(): number;
}

/**
 * The reporter's instruments. Counts are observed from `stats()` when the SDK collects (no work
 * per event); only delivery latency is recorded as it happens, once per batch.
 */
export class ReporterMetrics {
  private readonly histogram: { record(value: number, attributes?: Attributes): void } | undefined;
  private source: MetricsSource;
  private latencyAttributes: Attributes = {};

  constructor(config: ResolvedMetrics, source: MetricsSource, mode: string) {
    this.source = source;
    if (!config.enabled) return;
    const provider = config.meterProvider ?? loadApi()?.metrics.getMeterProvider();
    if (provider === undefined) return;
    const meter = provider.getMeter(METRICS_SCOPE) as OtelMeter;
    const counter = (name: string, description: string, unit: string): unknown => meter.createObservableCounter(name, { description, unit });
    const enqueued = counter('metered.events.enqueued', 'Events accepted by report() (folds, with aggregate) and taken over from a spool', '{event}');
    const delivered = counter('metered.events.delivered', 'Events Stripe acknowledged', '{event}');
    const failed = counter('metered.events.failed', 'Events refused by Stripe or out of retries (onError)', '{event}');
    const dropped = counter('metered.events.dropped', 'Events dropped undelivered (onDrop), by reason', '{event}');
    const rejected = counter('metered.events.rejected', 'report() calls refused (invalid, full queue, closed)', '{call}');
    const requests = counter('metered.requests', 'HTTP requests sent to Stripe, every attempt included', '{request}');
    const retries = counter('metered.requests.retries', 'Attempts that were retries', '{request}');
    const rateLimited = counter('metered.requests.rate_limited', '429 answers from Stripe', '{request}');
    const depth = meter.createObservableGauge('metered.queue.depth', { description: 'Events waiting for a request', unit: '{event}' });
    const inFlight = meter.createObservableGauge('metered.queue.in_flight', { description: 'Events in requests being sent or waiting for a retry', unit: '{event}' });
    const folds = meter.createObservableGauge('metered.aggregate.open', { description: 'Folds open in the aggregation window (aggregate)', unit: '{fold}' });
    this.histogram = meter.createHistogram('metered.delivery.duration', {
      description: "A batch's time from its first attempt to Stripe's acknowledgment, retries included",
      unit: 'ms',
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS_MS },
    });
    const attributes: Attributes = { mode };
    const observables = [enqueued, delivered, failed, dropped, rejected, requests, retries, rateLimited, depth, inFlight, folds];
    const observe = (result: ObservableResult): void => {
      const s = this.source.stats();
      result.observe(enqueued, s.enqueued, attributes);
      result.observe(delivered, s.delivered, attributes);
      result.observe(failed, s.failed, attributes);
      for (const reason of ['overflow', 'shutdown', 'expired'] as const) result.observe(dropped, s.dropped[reason], { ...attributes, reason });
      result.observe(rejected, s.rejected, attributes);
      result.observe(requests, s.requests, attributes);
      result.observe(retries, s.retries, attributes);
      result.observe(rateLimited, s.rateLimited, attributes);
      result.observe(depth, s.queued, attributes);
      result.observe(inFlight, s.inFlight, attributes);
      result.observe(folds, this.source.openFolds(), attributes);
    };
    meter.addBatchObservableCallback(observe, observables);
    this.latencyAttributes = attributes;
  }

  /** One batch delivered after `ms` from its first attempt. */
  recordDelivery(ms: number): void {
    this.histogram?.record(ms, this.latencyAttributes);
  }

  /**
   * At close: the final counters go on being exported as they are (a scrape after the close sees its
   * drops), from a snapshot, so the provider's callback no longer holds the reporter.
   */
  shutdown(): void {
    const final = this.source.stats();
    this.source = { stats: () => final, openFolds: () => 0 };
  }
}
