// The reporter's OpenTelemetry metrics exported for Prometheus: a MeterProvider with a Prometheus reader, scraped at GET /metrics.
import { MeterReporter } from '@metered/core';
import type { MeterReporterOptions } from '@metered/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import express from 'express';
import type { Express } from 'express';

/**
 * A reporter recording on its own MeterProvider, and an app serving that provider's metrics in
 * Prometheus' text format at `/metrics` (`metered_events_delivered_total`, `metered_queue_depth`,
 * `metered_delivery_duration_bucket`…). Mount the route on the API, or on an internal port.
 */
export function createMetricsApp(options: MeterReporterOptions): { reporter: MeterReporter; app: Express; shutdown(): Promise<void> } {
  // No server of the exporter's own: the app serves the scrape.
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ readers: [exporter] });
  const reporter = new MeterReporter({ ...options, metrics: { meterProvider } });
  const app = express();
  app.get('/metrics', (req, res) => exporter.getMetricsRequestHandler(req, res));
  return {
    reporter,
    app,
    async shutdown() {
      await reporter.close();
      await meterProvider.shutdown();
    },
  };
}
