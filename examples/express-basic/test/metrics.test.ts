// The Prometheus example scraped over HTTP: every counter it exports matches the reporter's stats().
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { createMetricsApp } from '../src/metrics';

let fake: FakeStripe;

beforeAll(async () => {
  fake = await startFakeStripe({ meters: ['api_requests'] });
});
afterAll(async () => {
  await fake.close();
});

/** `name{labels} value` lines of a Prometheus text exposition, keyed by name and labels. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const match = /^(\S+?)(\{[^}]*\})?\s+(\S+)/.exec(line);
    // The exporter adds the instrumentation scope to every sample; the assertions name the reporter's own labels.
    const labels = (match?.[2] ?? '').replace(/,?otel_scope_[a-z_]+="[^"]*"/g, '').replace('{,', '{');
    if (match !== null) out.set(`${match[1]}${labels === '{}' ? '' : labels}`, Number(match[3]));
  }
  return out;
}

function sample(all: Map<string, number>, name: string, labels = 'mode="stream"'): number | undefined {
  return all.get(`${name}{${labels}}`);
}

describe('the Prometheus metrics example', () => {
  it('exports counters equal to stats(), queue depth, 429s and delivery latency, scraped at /metrics', async () => {
    const drops: string[] = [];
    const { reporter, app, shutdown } = createMetricsApp({
      apiKey: fake.apiKey,
      apiBaseUrl: fake.url,
      meterEventsBaseUrl: fake.meterEventsUrl,
      maxQueueSize: 5,
      retry: { initialDelayMs: 1, maxDelayMs: 5 },
      onDrop: (_events, reason) => drops.push(reason),
      onError: () => undefined,
    });
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
      fake.faults.fail({ endpoint: 'meter_event_stream', status: 429, count: 1 });
      for (let i = 0; i < 7; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_m' });
      expect(() => reporter.report({ eventName: 'api_requests', customerId: '' })).toThrow();
      const before = samples(await (await fetch(url)).text());
      // Five queued (two dropped for overflow), none sent yet.
      expect(sample(before, 'metered_queue_depth')).toBe(5);
      await reporter.flush();

      const stats = reporter.stats();
      const after = samples(await (await fetch(url)).text());
      expect(stats).toMatchObject({ enqueued: 7, delivered: 5, rejected: 1, dropped: { overflow: 2 }, rateLimited: 1 });
      expect(sample(after, 'metered_events_enqueued_total')).toBe(stats.enqueued);
      expect(sample(after, 'metered_events_delivered_total')).toBe(stats.delivered);
      expect(sample(after, 'metered_events_failed_total')).toBe(stats.failed);
      expect(sample(after, 'metered_events_rejected_total')).toBe(stats.rejected);
      expect(sample(after, 'metered_events_dropped_total', 'mode="stream",reason="overflow"')).toBe(stats.dropped.overflow);
      expect(sample(after, 'metered_events_dropped_total', 'mode="stream",reason="shutdown"')).toBe(0);
      expect(sample(after, 'metered_requests_total')).toBe(stats.requests);
      expect(sample(after, 'metered_requests_retries_total')).toBe(stats.retries);
      expect(sample(after, 'metered_requests_rate_limited_total')).toBe(stats.rateLimited);
      expect(sample(after, 'metered_queue_depth')).toBe(0);
      expect(sample(after, 'metered_delivery_duration_count')).toBe(stats.batchesSent);
      expect(drops).toEqual(['overflow']);
    } finally {
      server.close();
      await shutdown();
    }
  });
});
