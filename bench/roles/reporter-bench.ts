// Child process: a MeterReporter driven directly (no HTTP server) — delivery throughput, pacing, report() cost, queue memory.
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { MeterReporter } from '@metered/core';
import type { DeliveryMode, MeterReporterOptions } from '@metered/core';
import { childConfig, serveParent } from '../lib/proc';
import { profilerHandlers } from '../lib/profiler';
import { median } from '../lib/stats';
import type { FakeReady } from './fake-stripe';
import { BENCH_EVENT, cpuMs, reporterOptions } from './shared';

export interface ReporterBenchConfig {
  fake: FakeReady;
}

/** Events dropped on purpose (closing with a backlog) are not worth a warning here. */
function ignore(): void {}

/** Payers rotate over this many customers: direct mode allows one request in flight per customer and meter. */
const CUSTOMERS = Array.from({ length: 1000 }, (_, i) => `cus_bench_${String(i).padStart(4, '0')}`);

export interface ThroughputResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** Requests the reporter made in the window, and successful ones (batches). */
  requests: number;
  batches: number;
  /** 429s the reporter saw over the whole run. */
  rateLimited: number;
  dropped: number;
  failed: number;
  /** CPU use of this (the reporter's) process over the window, in cores. */
  cores: number;
  /** CPU time of this process per event delivered, microseconds. */
  cpuUsPerEvent: number;
}

interface ProduceOptions {
  seconds: number;
  /** Keep at least this many events queued, so delivery never waits for intake. */
  queued: number;
}

/** Reports events as an app under load would (a few hundred per turn of the event loop) until `seconds` pass. */
async function produce(reporter: MeterReporter, { seconds, queued }: ProduceOptions): Promise<void> {
  const deadline = performance.now() + seconds * 1000;
  let n = 0;
  while (performance.now() < deadline) {
    const room = Math.min(500, queued - reporter.stats().queued);
    for (let i = 0; i < room; i += 1) reporter.report({ eventName: BENCH_EVENT, customerId: CUSTOMERS[n++ % CUSTOMERS.length]!, value: 1 });
    // A full backlog waits on a timer rather than spinning, so the process's CPU time is the reporter's work.
    if (room > 0) await nextTurn();
    else await sleep(1);
  }
}

async function measureWindow(reporter: MeterReporter, produceOptions: ProduceOptions, drain: boolean): Promise<ThroughputResult> {
  const before = reporter.stats();
  const cpu0 = cpuMs();
  const started = performance.now();
  await produce(reporter, produceOptions);
  // Throughput counts events acknowledged by the fake: the window ends when the last one is.
  if (drain) await reporter.flush();
  const seconds = (performance.now() - started) / 1000;
  const after = reporter.stats();
  const events = after.delivered - before.delivered;
  return {
    events,
    seconds,
    eventsPerSecond: events / seconds,
    requests: after.requests - before.requests,
    batches: after.batchesSent - before.batchesSent,
    rateLimited: after.rateLimited,
    dropped: after.dropped.total,
    failed: after.failed,
    cores: (cpuMs() - cpu0) / 1000 / seconds,
    cpuUsPerEvent: ((cpuMs() - cpu0) * 1000) / Math.max(1, events),
  };
}

function reporterFor(fake: FakeReady, overrides: Partial<MeterReporterOptions>): MeterReporter {
  return new MeterReporter({ ...reporterOptions(fake), maxQueueSize: 1_000_000, ...overrides });
}

/** From report() to acknowledged by the fake, pacing off: what the reporter can push. */
async function delivery(fake: FakeReady, arg: { mode: DeliveryMode; seconds: number; warmupSeconds: number }): Promise<ThroughputResult> {
  const reporter = reporterFor(fake, { mode: arg.mode, maxRequestsPerSecond: 1_000_000 });
  const queued = arg.mode === 'stream' ? 5_000 : 2_000;
  await measureWindow(reporter, { seconds: arg.warmupSeconds, queued }, true);
  const result = await measureWindow(reporter, { seconds: arg.seconds, queued }, true);
  await reporter.close();
  return result;
}

/** Paced at `rps` against a fake enforcing the same limit; the window starts after a warm-up. */
async function pacing(fake: FakeReady, arg: { rps: number; seconds: number; warmupSeconds: number }): Promise<ThroughputResult> {
  const reporter = reporterFor(fake, { maxRequestsPerSecond: arg.rps, onDrop: ignore });
  const queued = 50 * 100;
  await produce(reporter, { seconds: arg.warmupSeconds, queued });
  // No drain: the rate is what the pacer lets through while work is always waiting.
  const result = await measureWindow(reporter, { seconds: arg.seconds, queued }, false);
  await reporter.close({ timeoutMs: 0 });
  return result;
}

/** One warm-up run was not enough: the first timed run came out up to twice the others. */
const WARMUP_RUNS = 2;

export interface HotPathResult {
  /** ns per report() call, one figure per run. */
  runs: number[];
  median: number;
}

/** report() in a tight loop: validation, identifier, enqueue. Nothing is sent (no event loop turn). */
function hotPath(arg: { runs: number; ops: number; withTimestamp: boolean }): HotPathResult {
  const runs: number[] = [];
  const timestamp = Date.now();
  for (let run = -WARMUP_RUNS; run < arg.runs; run += 1) {
    // A fresh reporter per run, so every run starts from an empty queue; negative runs warm the JIT up.
    const reporter = new MeterReporter({
      apiKey: 'sk_test_bench',
      apiBaseUrl: 'http://127.0.0.1:9',
      meterEventsBaseUrl: 'http://127.0.0.1:9',
      maxQueueSize: arg.ops + 1,
      flushIntervalMs: 3_600_000,
      onDrop: ignore,
    });
    const started = process.hrtime.bigint();
    if (arg.withTimestamp) {
      // What the framework adapters pass: value, arrival time and an identifier slot.
      for (let i = 0; i < arg.ops; i += 1) {
        reporter.report({ eventName: BENCH_EVENT, customerId: CUSTOMERS[i % CUSTOMERS.length]!, value: 1, timestamp, identifier: undefined });
      }
    } else {
      for (let i = 0; i < arg.ops; i += 1) reporter.report({ eventName: BENCH_EVENT, customerId: CUSTOMERS[i % CUSTOMERS.length]! });
    }
    const ns = Number(process.hrtime.bigint() - started) / arg.ops;
    if (run >= 0) runs.push(ns);
    void reporter.close({ timeoutMs: 0 });
  }
  return { runs, median: median(runs) };
}

export interface MemoryResult {
  events: number;
  queued: number;
  heapBeforeMb: number;
  heapAfterMb: number;
  bytesPerEvent: number;
  dropped: number;
}

function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  for (let i = 0; i < 4; i += 1) gc();
  return process.memoryUsage().heapUsed;
}

/** Heap per queued event while Stripe is down: every event stays queued, retried, none delivered. */
async function memory(fake: FakeReady, arg: { events: number }): Promise<MemoryResult> {
  const reporter = reporterFor(fake, { maxQueueSize: arg.events, maxRequestsPerSecond: 1_000_000, onDrop: ignore });
  // One failed attempt first, so the session attempt, the agent and the retry path exist before the baseline.
  reporter.report({ eventName: BENCH_EVENT, customerId: CUSTOMERS[0]! });
  const flushing = reporter.flush();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const before = heapAfterGc();
  let n = 1;
  while (n < arg.events) {
    for (let i = 0; i < 10_000 && n < arg.events; i += 1, n += 1) {
      reporter.report({ eventName: BENCH_EVENT, customerId: CUSTOMERS[n % CUSTOMERS.length]!, value: 1, timestamp: Date.now() });
    }
    await nextTurn();
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  const after = heapAfterGc();
  const stats = reporter.stats();
  await reporter.close({ timeoutMs: 0 });
  await flushing;
  return {
    events: arg.events,
    queued: stats.pending,
    heapBeforeMb: before / 2 ** 20,
    heapAfterMb: after / 2 ** 20,
    bytesPerEvent: (after - before) / arg.events,
    dropped: stats.dropped.total,
  };
}

function main(): void {
  const { fake } = childConfig<ReporterBenchConfig>();
  serveParent(
    {},
    {
      delivery: (arg: { mode: DeliveryMode; seconds: number; warmupSeconds: number }) => delivery(fake, arg),
      pacing: (arg: { rps: number; seconds: number; warmupSeconds: number }) => pacing(fake, arg),
      hotPath,
      memory: (arg: { events: number }) => memory(fake, arg),
      ...profilerHandlers(),
    },
  );
}

main();
