// Usage shapes, measured: Stripe requests and CPU per report with and without `aggregate`, and what serverless delivery costs per invocation.
//
//   npx tsx --tsconfig tsconfig.json bench/shapes.ts            (sources; ~20 s)
//
// Against the fake on 127.0.0.1; figures are for comparing the shapes with each other on one machine.
import { MeterReporter } from '@metered/core';
import type { MeterReporterOptions } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { performance } from 'node:perf_hooks';

const EVENTS = 200_000;
const CUSTOMERS = 200;
const INVOCATIONS = 300;

function options(fake: FakeStripe, extra: Partial<MeterReporterOptions> = {}): MeterReporterOptions {
  return { apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl, maxRequestsPerSecond: 100_000, maxQueueSize: 1_000_000, ...extra };
}

async function reportMany(fake: FakeStripe, extra: Partial<MeterReporterOptions>): Promise<{ cpuUsPerReport: number; requests: number; events: number; total: number }> {
  fake.reset();
  const reporter = new MeterReporter(options(fake, extra));
  const cpu = process.cpuUsage();
  for (let i = 0; i < EVENTS; i += 1) reporter.report({ eventName: 'api_requests', customerId: `cus_${i % CUSTOMERS}`, value: 1 + (i % 7) });
  const reportCpu = process.cpuUsage(cpu);
  await reporter.close({ timeoutMs: 120_000 });
  const total = Object.values(fake.totals()).reduce((sum, byMeter) => sum + (byMeter.api_requests ?? 0), 0);
  return {
    cpuUsPerReport: (reportCpu.user + reportCpu.system) / EVENTS,
    requests: fake.requests().filter((r) => r.endpoint === 'meter_event_stream').length,
    events: fake.events().length,
    total,
  };
}

/** One invocation: report, "send the response", then whatever the recipe does before the function may freeze. */
async function invocations(fake: FakeStripe, recipe: 'flush' | 'waitUntil'): Promise<{ responseMs: number; lifetimeMs: number; delivered: number }> {
  fake.reset();
  let pending: Promise<unknown>[] = [];
  const reporter = new MeterReporter(options(fake, recipe === 'waitUntil' ? { waitUntil: (p) => pending.push(p) } : {}));
  let responseMs = 0;
  let lifetimeMs = 0;
  for (let i = 0; i < INVOCATIONS; i += 1) {
    const start = performance.now();
    reporter.report({ eventName: 'api_requests', customerId: 'cus_fn' });
    if (recipe === 'flush') await reporter.flush();
    responseMs += performance.now() - start;
    // The runtime keeps the function alive for waitUntil's promises after the response.
    await Promise.all(pending);
    pending = [];
    lifetimeMs += performance.now() - start;
  }
  await reporter.close();
  return { responseMs: responseMs / INVOCATIONS, lifetimeMs: lifetimeMs / INVOCATIONS, delivered: fake.events().length };
}

async function main(): Promise<void> {
  const fake = await startFakeStripe({ meters: ['api_requests'], rateLimit: false });
  try {
    const plain = await reportMany(fake, {});
    const folded = await reportMany(fake, { aggregate: { windowMs: 60_000, meters: { api_requests: 'sum' } } });
    console.log(`aggregate: ${EVENTS} reports over ${CUSTOMERS} customers`);
    console.log(`  plain      stream requests ${plain.requests}, events sent ${plain.events}, billed ${plain.total}, CPU per report ${plain.cpuUsPerReport.toFixed(2)} µs`);
    console.log(`  aggregate  stream requests ${folded.requests}, events sent ${folded.events}, billed ${folded.total}, CPU per report ${folded.cpuUsPerReport.toFixed(2)} µs`);
    console.log(`  reduction  ${(plain.requests / Math.max(1, folded.requests)).toFixed(0)}× fewer requests, totals equal: ${plain.total === folded.total}`);
    const flush = await invocations(fake, 'flush');
    const wait = await invocations(fake, 'waitUntil');
    console.log(`serverless: ${INVOCATIONS} invocations of one event each`);
    console.log(`  await flush()  response +${flush.responseMs.toFixed(2)} ms, lifetime ${flush.lifetimeMs.toFixed(2)} ms, delivered ${flush.delivered}`);
    console.log(`  waitUntil      response +${wait.responseMs.toFixed(2)} ms, lifetime ${wait.lifetimeMs.toFixed(2)} ms, delivered ${wait.delivered}`);
  } finally {
    await fake.close();
  }
}

void main();
