// Child process: a RedisMeterReporter driven directly (no HTTP server), pinned like every other code under test — events/s through Redis, report() cost.
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { RedisMeterReporter } from '@metered/redis';
import { childConfig, serveParent } from '../lib/proc';
import { median } from '../lib/stats';
import type { FakeReady } from './fake-stripe';
import { BENCH_CUSTOMER, BENCH_EVENT, LIVE_STREAM_RPS, cpuMs } from './shared';

export interface RedisBenchConfig {
  fake: FakeReady;
  redisUrl: string;
}

export interface RedisThroughput {
  events: number;
  seconds: number;
  settled: boolean;
  /** CPU time of this (the reporter's) process per event, microseconds. */
  cpuUsPerEvent: number;
}

export interface RedisHotPath {
  nsPerOp: number;
  samples: number[];
}

const { fake, redisUrl } = childConfig<RedisBenchConfig>();

function reporterFor(deliver: boolean): RedisMeterReporter {
  return new RedisMeterReporter({
    apiKey: fake.apiKey,
    apiBaseUrl: fake.url,
    meterEventsBaseUrl: fake.meterEventsUrl,
    redis: redisUrl,
    keyPrefix: `metered-bench-${process.pid}-${deliver ? 'deliver' : 'enqueue'}`,
    deliver,
    maxRequestsPerSecond: LIVE_STREAM_RPS,
    maxQueueSize: 1_000_000,
    queue: { prefetch: 2000, maxLocalEvents: 1_000_000 },
    logger: { warn: () => undefined, error: () => undefined },
  });
}

serveParent(
  {},
  {
    // Report as fast as the loop allows, yielding every 1000 events as a server between requests would; the window closes when flush() resolves.
    async throughput(events: number): Promise<RedisThroughput> {
      const reporter = reporterFor(true);
      const cpu0 = cpuMs();
      const started = performance.now();
      for (let i = 0; i < events; i += 1) {
        reporter.report({ eventName: BENCH_EVENT, customerId: BENCH_CUSTOMER });
        if (i % 1000 === 999) await nextTurn();
      }
      const flushed = await reporter.flush({ timeoutMs: 120_000 });
      const seconds = (performance.now() - started) / 1000;
      const cpuUsPerEvent = ((cpuMs() - cpu0) * 1000) / events;
      await reporter.close({ timeoutMs: 0 });
      return { events, seconds, settled: flushed.settled, cpuUsPerEvent };
    },
    // report() alone with the Redis store (enqueue-only: nothing competes in this process but the pipelined XADDs).
    async hotPath({ runs, ops }: { runs: number; ops: number }): Promise<RedisHotPath> {
      const enqueuer = reporterFor(false);
      const samples: number[] = [];
      for (let run = 0; run < runs; run += 1) {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < ops; i += 1) enqueuer.report({ eventName: BENCH_EVENT, customerId: BENCH_CUSTOMER });
        samples.push(Number(process.hrtime.bigint() - t0) / ops);
        // The turn ends here, so the run's events go to Redis before the next run is timed.
        await nextTurn();
      }
      await enqueuer.flush({ timeoutMs: 0 });
      await enqueuer.close({ timeoutMs: 0 });
      return { nsPerOp: median(samples), samples };
    },
  },
);
