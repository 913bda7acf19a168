// Scenario 9: the delivery thread (issue 14) — deliveryThread 'main' against 'worker', with the worker on the server's CPU and on the other one.
import { placement } from '../lib/placement';
import { Child } from '../lib/proc';
import { fmt, section } from '../lib/report';
import type { Section } from '../lib/report';
import { simultaneous } from '../lib/simultaneous';
import { median } from '../lib/stats';
import type { DeliveryThreadConfig, LoopResult, ThreadCpu } from '../roles/delivery-thread';
import type { FakeReady } from '../roles/fake-stripe';
import type { ServerReady } from '../roles/shared';

export interface DeliveryThreadPlan {
  loop: { seconds: number; warmupSeconds: number };
  express: { warmupSeconds: number; rounds: number; seconds: number; connections: number };
}

/** The three placements compared: where the HTTP exchange runs, and on which CPU. */
interface Placement {
  label: string;
  thread: 'main' | 'worker';
  /** The worker's CPUs (`taskset -pc`); undefined: where the process is pinned (the server's CPU). */
  workerCpus: string | undefined;
}

function placements(): Placement[] {
  const other = placement.tools;
  return [
    { label: "'main'", thread: 'main', workerCpus: undefined },
    { label: "'worker', same CPU", thread: 'worker', workerCpus: undefined },
    ...(other === undefined ? [] : [{ label: `'worker' on CPU ${other} (spare core)`, thread: 'worker' as const, workerCpus: other }]),
  ];
}

function start(fake: FakeReady, server: DeliveryThreadConfig['server']): Promise<Child<ServerReady>> {
  const config: DeliveryThreadConfig = { fake, server };
  return Child.start<ServerReady>('roles/delivery-thread.ts', { cpus: placement.server, config });
}

const us = (ms: number, events: number): string => `${((ms * 1000) / Math.max(1, events)).toFixed(2)} µs`;

export async function deliveryThreadScenario(id: string, plan: DeliveryThreadPlan, log: (line: string) => void): Promise<Section> {
  const result = section(id, "Delivery thread: `deliveryThread` 'main' against 'worker'");
  const fake = await Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools });
  try {
    // 1. The reporter alone, report() → acknowledged, pacing off (scenario 4's loop): CPU per event on each thread.
    const loopRows: string[][] = [];
    const loops: Array<{ p: Placement; r: LoopResult }> = [];
    for (const p of placements()) {
      const bench = await start(fake.ready, 'none');
      try {
        const r = await bench.call<LoopResult>('loop', { thread: p.thread, workerCpus: p.workerCpus, ...plan.loop });
        loops.push({ p, r });
        log(`  loop ${p.label}: ${fmt.int(r.events / r.seconds)} events/s; request thread ${us(r.mainMs, r.events)}/event, worker ${us(r.workerMs, r.events)}, process ${us(r.processMs, r.events)}`);
        loopRows.push([p.label, fmt.int(r.events / r.seconds), us(r.mainMs, r.events), p.thread === 'worker' ? us(r.workerMs, r.events) : '—', us(r.processMs, r.events)]);
      } finally {
        await bench.stop();
      }
    }
    result.tables.push({ head: ['report() → acknowledged (stream, pacing off)', 'events/s', 'request-thread CPU / event', 'worker-thread CPU / event', 'process CPU / event'], rows: loopRows });

    // 2. Express, metered ÷ bare in simultaneous rounds (as scenario 1), each placement against the same bare server.
    const { warmupSeconds, rounds, seconds, connections } = plan.express;
    const bare = await start(fake.ready, 'bare');
    const metered: Array<{ p: Placement; server: Child<ServerReady> }> = [];
    try {
      for (const p of placements()) metered.push({ p, server: await start(fake.ready, p.thread) });
      const ratios = new Map<Placement, number[]>(metered.map(({ p }) => [p, []]));
      const threads = new Map<Placement, ThreadCpu[]>(metered.map(({ p }) => [p, []]));
      const served = new Map<Placement, number>(metered.map(({ p }) => [p, 0]));
      for (const { p, server } of metered) {
        // The worker exists once the reporter does; it is found (and moved) before any load.
        if (p.thread === 'worker') await server.call('placeWorker', p.workerCpus);
        await simultaneous(bare, server, connections, warmupSeconds);
      }
      const headToHead = new Map<Placement, number[]>(metered.slice(1).map(({ p }) => [p, []]));
      const [first, ...workers] = metered;
      for (let round = 0; round < rounds; round += 1) {
        for (const { p, server } of metered) {
          const before = await server.call<ThreadCpu>('threadCpu');
          const { a, b } = await simultaneous(bare, server, connections, seconds);
          const after = await server.call<ThreadCpu>('threadCpu');
          ratios.get(p)!.push(b.rps / a.rps);
          threads.get(p)!.push({ mainMs: after.mainMs - before.mainMs, workerMs: after.workerMs - before.workerMs, processMs: after.processMs - before.processMs });
          served.set(p, served.get(p)! + b.ok);
        }
        // Each worker placement against 'main' directly: one ratio, not two medians against bare.
        for (const { p, server } of workers) {
          const { a, b } = await simultaneous(first!.server, server, connections, seconds);
          headToHead.get(p)!.push(b.rps / a.rps);
        }
      }
      const counts = await Promise.all(metered.map(({ server }) => server.call<{ delivered: number; requests: number }>('counts')));
      // CPU per request of each placement's server over its rounds against bare: request thread, and the whole process.
      const perRequestCpu = new Map<Placement, { mainUs: number; processUs: number }>();
      const rows = metered.map(({ p }, i) => {
        const r = ratios.get(p)!;
        const perRequest = (counts[i]!.delivered / Math.max(1, counts[i]!.requests)).toFixed(1);
        const t = threads.get(p)!;
        const n = served.get(p)!;
        const sum = (pick: (x: ThreadCpu) => number): number => t.reduce((total, x) => total + pick(x), 0);
        perRequestCpu.set(p, { mainUs: (sum((x) => x.mainMs) * 1000) / Math.max(1, n), processUs: (sum((x) => x.processMs) * 1000) / Math.max(1, n) });
        log(`  express ${p.label}: ${fmt.ratio(median(r))} of bare (rounds ${r.map((x) => x.toFixed(3)).join(', ')}); request thread ${us(sum((x) => x.mainMs), n)}/request, worker ${us(sum((x) => x.workerMs), n)}, process ${us(sum((x) => x.processMs), n)}; ${perRequest} events per request to the fake`);
        return [p.label, fmt.ratio(median(r)), r.map((x) => x.toFixed(3)).join(', '), us(sum((x) => x.mainMs), n), p.thread === 'worker' ? us(sum((x) => x.workerMs), n) : '—', us(sum((x) => x.processMs), n), perRequest];
      });
      result.tables.push({
        head: ['Express, metered ÷ bare (simultaneous rounds, both on CPU 0)', 'median', 'rounds', 'request-thread CPU / request', 'worker-thread CPU / request', 'process CPU / request', 'events per request to the fake'],
        rows,
      });
      const base = perRequestCpu.get(first!.p)!;
      const h2hRows = workers.map(({ p }) => {
        const r = headToHead.get(p)!;
        const cpu = perRequestCpu.get(p)!;
        const mainRatio = base.mainUs / cpu.mainUs;
        const processRatio = cpu.processUs / base.processUs;
        log(`  express ${p.label} ÷ 'main', head to head: ${fmt.ratio(median(r))} (rounds ${r.map((x) => x.toFixed(3)).join(', ')}); request-thread CPU 'main' ÷ this ${fmt.ratio(mainRatio)}, process CPU this ÷ 'main' ${fmt.ratio(processRatio)}`);
        // With a spare core the request thread is the bottleneck: throughput follows its CPU per request, and the
        // head-to-head rounds show it. On the same core the process's CPU per request decides; the rounds favour the
        // process with two threads there (the scheduler shares a core between threads, not processes).
        result.checks.push(
          p.workerCpus === undefined
            ? {
                metric: `Express process CPU per request, ${p.label} ÷ 'main' (the worker on the app's core)`,
                measured: fmt.ratio(processRatio),
                baseline: `'main' ${fmt.us(base.processUs)}`,
                target: '< 1.00× to be worth choosing',
                met: processRatio < 1,
              }
            : {
                metric: `Express throughput, ${p.label} ÷ 'main' (simultaneous rounds, head to head)`,
                measured: fmt.ratio(median(r)),
                baseline: "'main' 1.000×",
                target: '> 1.00× to be worth choosing',
                met: median(r) > 1,
              },
        );
        return [`${p.label} ÷ 'main'`, fmt.ratio(median(r)), r.map((x) => x.toFixed(3)).join(', '), fmt.ratio(mainRatio), fmt.ratio(processRatio)];
      });
      result.tables.push({
        head: ['Express, metered head to head (simultaneous rounds)', 'throughput, median', 'rounds', "request-thread CPU / request, 'main' ÷ this", "process CPU / request, this ÷ 'main'"],
        rows: h2hRows,
      });
    } finally {
      await Promise.all([bare.stop(), ...metered.map(({ server }) => server.stop())]);
    }
    result.notes.push(
      `Loop: ${plan.loop.seconds} s after ${plan.loop.warmupSeconds} s of warm-up, a fresh process per placement on CPU ${placement.server ?? '(unpinned)'}, the fake on CPU ${placement.tools ?? '(unpinned)'}; each thread's CPU from /proc/self/task/<tid>/schedstat, the process's from process.cpuUsage() (GC and V8's helper threads included).`,
      `Express: ${rounds} rounds of ${seconds} s, ${connections} connections to each server, after ${warmupSeconds} s of warm-up per pair; the spare-core worker shares CPU ${placement.tools ?? '—'} with the load generator and the fake, the only other core of this machine. Head-to-head rounds with the worker on the app's own core overstate it: the scheduler shares CPU 0 between threads, so the process with a worker gets part of its worker's time from the other process; there the process CPU per request is the figure to judge.`,
    );
  } finally {
    await fake.stop();
  }
  return result;
}
