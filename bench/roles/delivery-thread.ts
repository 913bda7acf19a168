// Child process: the delivery thread (issue 14) — a reporter with deliveryThread 'main' or 'worker', on its own or behind an Express app, with each thread's CPU read apart.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { MeterReporter } from '@metered/core';
import type { DeliveryThread, MeterReporterOptions } from '@metered/core';
import { meterUsage } from '@metered/express';
import express from 'express';
import { childConfig, serveParent } from '../lib/proc';
import type { FakeReady } from './fake-stripe';
import { BENCH_CUSTOMER, BENCH_EVENT, SERVER_HOST, cpuMs, placeDeliveryWorker, reporterOptions } from './shared';

export interface DeliveryThreadConfig {
  fake: FakeReady;
  /** Express: `bare`, or metered with the reporter's deliveryThread; `none`: no server (the reporter loop only). */
  server: 'none' | 'bare' | DeliveryThread;
}

export interface ThreadCpu {
  /** CPU time of the main (request) thread, of the delivery worker thread, and of the whole process, milliseconds. */
  mainMs: number;
  workerMs: number;
  processMs: number;
}

export interface LoopResult extends ThreadCpu {
  events: number;
  seconds: number;
  requests: number;
}

let tid: string | undefined;

/** A thread's CPU time from the scheduler (ns, /proc/self/task/<tid>/schedstat), in milliseconds; Node 20 has no per-thread CPU API. */
function threadMs(id: string | number): number {
  return Number(readFileSync(`/proc/self/task/${id}/schedstat`, 'latin1').split(' ')[0]) / 1e6;
}

function threadCpu(): ThreadCpu {
  return { mainMs: threadMs(process.pid), workerMs: tid === undefined ? 0 : threadMs(tid), processMs: cpuMs() };
}

function since(before: ThreadCpu): ThreadCpu {
  const now = threadCpu();
  return { mainMs: now.mainMs - before.mainMs, workerMs: now.workerMs - before.workerMs, processMs: now.processMs - before.processMs };
}

/** Finds the worker (if any) and, when asked, moves it to other CPUs: the spare-core case. */
async function placeWorker(cpus: string | undefined): Promise<string | undefined> {
  tid = await placeDeliveryWorker(cpus);
  return tid;
}

/** report() → acknowledged by the fake, pacing off, as in scenario 4: a backlog of `backlog` events is kept queued. */
async function loop(options: MeterReporterOptions, arg: { seconds: number; warmupSeconds: number; workerCpus?: string }): Promise<LoopResult> {
  const reporter = new MeterReporter({ ...options, maxQueueSize: 1_000_000, maxRequestsPerSecond: 1_000_000 });
  await placeWorker(arg.workerCpus);
  const backlog = 5_000;
  let n = 0;
  const run = async (seconds: number): Promise<void> => {
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      const queued = reporter.stats().queued;
      if (queued >= backlog) {
        await sleep(1);
        continue;
      }
      for (let i = queued; i < backlog; i += 1) reporter.report({ eventName: BENCH_EVENT, customerId: `cus_bench_${String(n++ % 1000).padStart(4, '0')}`, value: 1 });
      await nextTurn();
    }
    await reporter.flush();
  };
  await run(arg.warmupSeconds);
  const stats0 = reporter.stats();
  const cpu0 = threadCpu();
  const started = Date.now();
  await run(arg.seconds);
  const cpu = since(cpu0);
  const stats1 = reporter.stats();
  await reporter.close();
  tid = undefined;
  return { ...cpu, events: stats1.delivered - stats0.delivered, seconds: (Date.now() - started) / 1000, requests: stats1.requests - stats0.requests };
}

function main(): void {
  const { fake, server } = childConfig<DeliveryThreadConfig>();
  const app = express();
  let reporter: MeterReporter | undefined;
  if (server === 'main' || server === 'worker') {
    reporter = new MeterReporter({ ...reporterOptions(fake), deliveryThread: server });
    app.use(meterUsage({ reporter, eventName: BENCH_EVENT, customer: () => BENCH_CUSTOMER }));
  }
  app.get('/hello', (_req, res) => {
    res.send('Hello World!');
  });
  const listener = app.listen(0, SERVER_HOST, () => {
    serveParent(
      { url: `http://${SERVER_HOST}:${(listener.address() as AddressInfo).port}/hello` },
      {
        cpuMs,
        threadCpu,
        placeWorker: (cpus: string | undefined) => placeWorker(cpus),
        loop: (arg: { thread: DeliveryThread; seconds: number; warmupSeconds: number; workerCpus?: string }) => loop({ ...reporterOptions(fake), deliveryThread: arg.thread }, arg),
        /** Events delivered and requests made so far: how many events a request carried. */
        counts: () => ({ delivered: reporter?.stats().delivered ?? 0, requests: reporter?.stats().requests ?? 0 }),
        close: async () => {
          listener.closeAllConnections();
          await new Promise((resolve) => listener.close(resolve));
          await reporter?.close();
        },
      },
    );
  });
}

main();
