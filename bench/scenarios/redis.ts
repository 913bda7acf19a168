// Scenario 7: the shared Redis queue — events/s from report() through Redis to the fake, and report()'s cost with the Redis store.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { RedisMeterReporter } from '@metered/redis';
import { placement } from '../lib/placement';
import { Child } from '../lib/proc';
import { fmt, section } from '../lib/report';
import type { Section } from '../lib/report';
import { median } from '../lib/stats';
import type { FakeCounts, FakeReady } from '../roles/fake-stripe';
import { BENCH_CUSTOMER, BENCH_EVENT, LIVE_STREAM_RPS } from '../roles/shared';

export const REDIS_THROUGHPUT_TARGET = 50_000;
export const REDIS_REPORT_TARGET_NS = 3000;

export interface RedisPlan {
  /** Events pushed through Redis to the fake. */
  events: number;
  /** report() timing: runs of `ops` calls each. */
  hotPath: { runs: number; ops: number };
}

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || 6379) });
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(false));
    socket.once('connect', () => (socket.destroy(), resolve(true)));
  });
}

function reporterFor(fake: FakeReady, deliver: boolean): RedisMeterReporter {
  return new RedisMeterReporter({
    apiKey: fake.apiKey,
    apiBaseUrl: fake.url,
    meterEventsBaseUrl: fake.meterEventsUrl,
    redis: REDIS_URL,
    keyPrefix: `metered-bench-${process.pid}-${deliver ? 'deliver' : 'enqueue'}`,
    deliver,
    maxRequestsPerSecond: LIVE_STREAM_RPS,
    maxQueueSize: 1_000_000,
    queue: { prefetch: 2000, maxLocalEvents: 1_000_000 },
    logger: { warn: () => undefined, error: () => undefined },
  });
}

export async function redisQueue(id: string, plan: RedisPlan, log: (line: string) => void): Promise<Section> {
  const result = section(id, 'Shared Redis queue (`@metered/redis`): `report()` → Redis Stream → the fake');
  if (!(await reachable(REDIS_URL))) {
    result.notes.push(`Skipped: Redis is unreachable at ${REDIS_URL}.`);
    log(`  skipped: Redis unreachable at ${REDIS_URL}`);
    return result;
  }
  const fake = await Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools, config: {} });
  try {
    // Throughput: report as fast as the loop allows, yielding every 1000 events as a server between requests would.
    const reporter = reporterFor(fake.ready, true);
    const started = performance.now();
    for (let i = 0; i < plan.events; i += 1) {
      reporter.report({ eventName: BENCH_EVENT, customerId: BENCH_CUSTOMER });
      if (i % 1000 === 999) await nextTurn();
    }
    const flushed = await reporter.flush({ timeoutMs: 120_000 });
    const seconds = (performance.now() - started) / 1000;
    await reporter.close({ timeoutMs: 0 });
    const counts = await fake.call<FakeCounts>('counts');
    const eventsPerSecond = plan.events / seconds;
    log(`  through Redis: ${fmt.int(eventsPerSecond)} events/s (${fmt.int(plan.events)} in ${seconds.toFixed(2)} s, fake accepted ${fmt.int(counts.acceptedEvents)}, settled ${flushed.settled})`);

    // report() alone with the Redis store (enqueue-only: nothing competes in this process but the pipelined XADDs).
    const enqueuer = reporterFor(fake.ready, false);
    const samples: number[] = [];
    for (let run = 0; run < plan.hotPath.runs; run += 1) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < plan.hotPath.ops; i += 1) enqueuer.report({ eventName: BENCH_EVENT, customerId: BENCH_CUSTOMER });
      samples.push(Number(process.hrtime.bigint() - t0) / plan.hotPath.ops);
      // The turn ends here, so the run's events go to Redis before the next run is timed.
      await nextTurn();
    }
    await enqueuer.flush({ timeoutMs: 0 });
    await enqueuer.close({ timeoutMs: 0 });
    const ns = median(samples);
    log(`  report() with the Redis store: ${ns.toFixed(0)} ns/op median of ${plan.hotPath.runs} runs × ${fmt.int(plan.hotPath.ops)}`);

    result.tables.push({
      head: ['measure', 'value', 'detail'],
      rows: [
        ['events/s, `report()` → Redis → fake (stream, batches of 100)', fmt.int(eventsPerSecond), `${fmt.int(plan.events)} events in ${seconds.toFixed(2)} s; fake accepted ${fmt.int(counts.acceptedEvents)}`],
        ['`report()` ns/op, Redis store (median)', ns.toFixed(0), `${plan.hotPath.runs} runs × ${fmt.int(plan.hotPath.ops)} calls; samples ${samples.map((s) => s.toFixed(0)).join(', ')}`],
      ],
    });
    result.checks.push({ metric: 'events/s through Redis', measured: fmt.int(eventsPerSecond), baseline: '—', target: `≥ ${fmt.int(REDIS_THROUGHPUT_TARGET)}`, met: eventsPerSecond >= REDIS_THROUGHPUT_TARGET && flushed.settled });
    result.checks.push({ metric: '`report()` median, Redis store', measured: `${ns.toFixed(0)} ns`, baseline: '—', target: `≤ ${REDIS_REPORT_TARGET_NS} ns`, met: ns <= REDIS_REPORT_TARGET_NS });
    return result;
  } finally {
    await fake.stop();
  }
}
