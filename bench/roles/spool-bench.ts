// Child process: a MeterReporter over the memory store or the on-disk spool — report() cost per turn and delivery from the spool.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { MeterReporter } from '@metered/core';
import type { MeterReporterOptions, ReporterSpoolOptions } from '@metered/core';
import { childConfig, serveParent } from '../lib/proc';
import { median } from '../lib/stats';
import type { FakeReady } from './fake-stripe';
import { BENCH_EVENT, cpuMs, reporterOptions } from './shared';

export interface SpoolBenchConfig {
  fake: FakeReady;
}

/** Which store a measurement runs on: `memory` is the baseline of the same run. */
export type StoreChoice = 'memory' | 'turn' | 'event';

export interface TurnCostResult {
  /** ns per report(), the end-of-turn commit included, one figure per run. */
  runs: number[];
  median: number;
  /** ns per report() call alone (the synchronous loop, without the turn's end). */
  callOnly: number;
}

export interface SpoolDeliveryResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  dropped: number;
  failed: number;
  cores: number;
  /** Spool file size at the end (after the last delivered rows were removed). */
  fileBytes: number;
}

const CUSTOMERS = Array.from({ length: 1000 }, (_, i) => `cus_bench_${String(i).padStart(4, '0')}`);
const DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-bench-spool-'));
let files = 0;

function ignore(): void {}

function spoolFor(store: StoreChoice): ReporterSpoolOptions | undefined {
  if (store === 'memory') return undefined;
  files += 1;
  return { path: path.join(DIR, `${store}-${files}.spool`), durability: store, synchronous: 'normal' };
}

function reporterOn(spool: ReporterSpoolOptions | undefined, options: MeterReporterOptions): MeterReporter {
  return new MeterReporter(spool === undefined ? options : { ...options, spool });
}

/**
 * An API that accepts connections and never answers: the reporter's first requests hang, so no
 * delivery work (attempt marks, settles) runs between the timed turns and the figure is intake alone.
 * A closed port would not do: every refused attempt is retried and, with a spool, written down.
 */
async function silentApi(): Promise<{ url: string; close: () => void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

const WARMUP_RUNS = 2;

/**
 * report() as a server calls it: `perTurn` calls in one event-loop turn, then the turn ends (the
 * spool's grouped commit runs in that turn's check phase, before the awaited setImmediate). Nothing
 * is delivered: the API never answers.
 */
async function turnCost(arg: { store: StoreChoice; runs: number; ops: number; perTurn: number }): Promise<TurnCostResult> {
  const runs: number[] = [];
  const calls: number[] = [];
  const timestamp = Date.now();
  const api = await silentApi();
  for (let run = -WARMUP_RUNS; run < arg.runs; run += 1) {
    const reporter = reporterOn(spoolFor(arg.store), {
      apiKey: 'sk_test_bench',
      apiBaseUrl: api.url,
      meterEventsBaseUrl: api.url,
      maxQueueSize: arg.ops + 1,
      requestTimeoutMs: 600_000,
      flushIntervalMs: 3_600_000,
      logger: { warn: ignore, error: ignore },
      onDrop: ignore,
    });
    let total = 0n;
    let sync = 0n;
    for (let done = 0; done < arg.ops; done += arg.perTurn) {
      const t0 = process.hrtime.bigint();
      for (let i = done; i < done + arg.perTurn; i += 1) {
        reporter.report({ eventName: BENCH_EVENT, customerId: CUSTOMERS[i % CUSTOMERS.length]!, value: 1, timestamp, identifier: undefined });
      }
      const t1 = process.hrtime.bigint();
      await nextTurn();
      total += process.hrtime.bigint() - t0;
      sync += t1 - t0;
    }
    if (run >= 0) {
      runs.push(Number(total) / arg.ops);
      calls.push(Number(sync) / arg.ops);
    }
    await reporter.close({ timeoutMs: 0 });
  }
  api.close();
  return { runs, median: median(runs), callOnly: median(calls) };
}

/** Events reported a few hundred per turn, with a backlog always waiting, until `seconds` pass; then flushed. */
async function spoolDelivery(fake: FakeReady, arg: { store: StoreChoice; seconds: number; warmupSeconds: number }): Promise<SpoolDeliveryResult> {
  const spool = spoolFor(arg.store);
  const reporter = reporterOn(spool, { ...reporterOptions(fake), maxRequestsPerSecond: 1_000_000, maxQueueSize: 1_000_000 });
  const window = async (seconds: number): Promise<SpoolDeliveryResult> => {
    const before = reporter.stats();
    const cpu0 = cpuMs();
    const started = performance.now();
    const deadline = started + seconds * 1000;
    let n = 0;
    while (performance.now() < deadline) {
      const room = Math.min(500, 5_000 - reporter.stats().queued);
      for (let i = 0; i < room; i += 1) reporter.report({ eventName: BENCH_EVENT, customerId: CUSTOMERS[n++ % CUSTOMERS.length]!, value: 1 });
      if (room > 0) await nextTurn();
      else await sleep(1);
    }
    await reporter.flush();
    const elapsed = (performance.now() - started) / 1000;
    const after = reporter.stats();
    const events = after.delivered - before.delivered;
    return {
      events,
      seconds: elapsed,
      eventsPerSecond: events / elapsed,
      dropped: after.dropped.total,
      failed: after.failed,
      cores: (cpuMs() - cpu0) / 1000 / elapsed,
      fileBytes: spool === undefined ? 0 : fs.statSync(spool.path).size,
    };
  };
  await window(arg.warmupSeconds);
  const result = await window(arg.seconds);
  await reporter.close();
  return result;
}

function main(): void {
  const { fake } = childConfig<SpoolBenchConfig>();
  process.on('exit', () => fs.rmSync(DIR, { recursive: true, force: true }));
  serveParent(
    {},
    {
      turnCost,
      delivery: (arg: { store: StoreChoice; seconds: number; warmupSeconds: number }) => spoolDelivery(fake, arg),
    },
  );
}

main();
