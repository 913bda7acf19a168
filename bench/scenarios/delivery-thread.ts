// Scenario 9: the delivery thread (issue 14) — deliveryThread 'main' against 'worker', with the worker on the server's CPU and on the other one.
import { placement } from '../lib/placement';
import { Child } from '../lib/proc';
import { fmt, section } from '../lib/report';
import type { Section } from '../lib/report';
import { simultaneous } from '../lib/simultaneous';
import { median } from '../lib/stats';
import type { DeliveryThreadConfig, LoopResult } from '../roles/delivery-thread';
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
      const cpu = new Map<Placement, number[]>(metered.map(({ p }) => [p, []]));
      for (const { p, server } of metered) {
        // The worker exists once the reporter does; it is found (and moved) before any load.
        if (p.thread === 'worker') await server.call('placeWorker', p.workerCpus);
        await simultaneous(bare, server, connections, warmupSeconds);
      }
      for (let round = 0; round < rounds; round += 1) {
        for (const { p, server } of metered) {
          const { a, b } = await simultaneous(bare, server, connections, seconds);
          ratios.get(p)!.push(b.rps / a.rps);
          cpu.get(p)!.push(b.cpuUs);
        }
      }
      const rows = metered.map(({ p }) => {
        const r = ratios.get(p)!;
        log(`  express ${p.label}: ${fmt.ratio(median(r))} of bare (rounds ${r.map((x) => x.toFixed(3)).join(', ')})`);
        return [p.label, fmt.ratio(median(r)), r.map((x) => x.toFixed(3)).join(', '), fmt.us(median(cpu.get(p)!))];
      });
      result.tables.push({ head: ['Express, metered ÷ bare (simultaneous rounds, both on CPU 0)', 'median', 'rounds', 'metered server CPU / request (all threads)'], rows });
      const main = median(ratios.get(metered[0]!.p)!);
      for (const { p } of metered.slice(1)) {
        result.checks.push({
          metric: `Express metered ÷ bare, ${p.label} vs 'main'`,
          measured: `${fmt.ratio(median(ratios.get(p)!))} vs ${fmt.ratio(main)}`,
          baseline: `'main' ${fmt.ratio(main)}`,
          target: "≥ 'main' to be worth choosing",
          met: median(ratios.get(p)!) >= main,
        });
      }
    } finally {
      await Promise.all([bare.stop(), ...metered.map(({ server }) => server.stop())]);
    }
    result.notes.push(
      `Loop: ${plan.loop.seconds} s after ${plan.loop.warmupSeconds} s of warm-up, a fresh process per placement on CPU ${placement.server ?? '(unpinned)'}, the fake on CPU ${placement.tools ?? '(unpinned)'}; each thread's CPU from /proc/self/task/<tid>/schedstat, the process's from process.cpuUsage() (GC and V8's helper threads included).`,
      `Express: ${rounds} rounds of ${seconds} s, ${connections} connections to each server, after ${warmupSeconds} s of warm-up per pair; the spare-core worker shares CPU ${placement.tools ?? '—'} with the load generator and the fake, the only other core of this machine.`,
    );
  } finally {
    await fake.stop();
  }
  return result;
}
