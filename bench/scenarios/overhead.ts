// Scenarios 1–2: a bare server against the same server with metering, both kept warm for the whole scenario.
import { load } from '../lib/load';
import type { LoadOptions, LoadResult } from '../lib/load';
import type { Child } from '../lib/proc';
import { simultaneous, withCpu } from '../lib/simultaneous';
import type { CpuSample } from '../lib/simultaneous';
import { median } from '../lib/stats';
import type { FakeCounts, FakeReady } from '../roles/fake-stripe';
import type { Delivery, ServerReady } from '../roles/shared';

export interface OverheadPlan {
  /** Both servers under load at once before anything is measured (JIT, pools, sessions). */
  warmupSeconds: number;
  /** Rounds of the simultaneous phase. */
  rounds: number;
  /** Bare/metered pairs of each alternating phase; pairs alternate which goes first (A/B, B/A, …). */
  pairs: number;
  seconds: number;
  connections: number;
  /** Connections of the latency phase: one request at a time, so latency is service time, not queueing. */
  latencyConnections: number;
}

type Sample = CpuSample;

export interface VariantFigures {
  rps: number;
  cpuUs: number;
  cores: number;
  p50: number;
  p99: number;
  /** Latencies with one request in flight. */
  serialP50: number;
  serialP99: number;
}

export interface OverheadResult {
  bare: VariantFigures;
  metered: VariantFigures;
  /** Median over simultaneous rounds of metered/bare throughput (both servers share one core). */
  sharedRatio: number;
  /** Median over alternating pairs of metered/bare throughput (each server has the core to itself). */
  alternatingRatio: number;
  /** Median over alternating pairs of metered/bare CPU per request. */
  cpuRatio: number;
  /** Median over latency pairs of metered minus bare, milliseconds. */
  addedP50: number;
  addedP99: number;
  /** Same at saturation (mostly queueing: it follows the throughput difference). */
  addedP99Saturated: number;
  /** 2xx responses of the metered server in measured runs, and the events the fake accepted for them. */
  responses: number;
  delivered: number;
  /** The metered server's reporter at the end: nothing may be dropped or failed. */
  reporter: Delivery;
  /** Connection errors and non-2xx answers. */
  errors: number;
}

async function cpuOf(server: Child<ServerReady>): Promise<number> {
  return server.call<number>('cpuMs');
}

/**
 * Measures `metered` against `bare` three ways. Simultaneous rounds load both servers at once on the
 * shared core: noise from outside (other processes, frequency changes) hits both alike, so their
 * throughput ratio is the ratio of their CPU cost per request. Alternating runs give each server the
 * core to itself, for absolute figures. The latency phase runs one request at a time.
 *
 * Every metered run starts from a flushed reporter and a reset fake and is flushed after, so the
 * fake's count is that run's events.
 */
export async function measureOverhead(
  bare: Child<ServerReady>,
  metered: Child<ServerReady>,
  fake: Child<FakeReady>,
  plan: OverheadPlan,
  log: (line: string) => void,
): Promise<OverheadResult> {
  let responses = 0;
  let delivered = 0;
  let errors = 0;
  const count = (result: LoadResult, events: number, isMetered: boolean): void => {
    errors += result.errors + result.non2xx;
    if (!isMetered) return;
    responses += result.ok;
    delivered += events;
  };
  const beforeMetered = async (): Promise<void> => {
    await metered.call('flush');
    await fake.call('reset');
  };
  const eventsSinceReset = async (): Promise<number> => {
    await metered.call('flush');
    return (await fake.call<FakeCounts>('counts')).acceptedEvents;
  };

  const solo = async (server: Child<ServerReady>, options: LoadOptions): Promise<Sample> => {
    const isMetered = server === metered;
    if (isMetered) await beforeMetered();
    const cpu0 = await cpuOf(server);
    const result = await load(server.ready.url, options);
    const sample = withCpu(result, (await cpuOf(server)) - cpu0);
    count(result, isMetered ? await eventsSinceReset() : 0, isMetered);
    return sample;
  };
  const together = async (seconds: number): Promise<{ bare: Sample; metered: Sample }> => {
    await beforeMetered();
    const { a, b } = await simultaneous(bare, metered, Math.max(1, Math.round(plan.connections / 2)), seconds);
    count(a, 0, false);
    count(b, await eventsSinceReset(), true);
    return { bare: a, metered: b };
  };
  const show = (name: string, s: Sample): void =>
    log(`    ${name.padEnd(7)} ${Math.round(s.rps).toString().padStart(6)} req/s  p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms  ${s.cpuUs.toFixed(0)} µs CPU/req  ${s.cores.toFixed(2)} cores`);

  log(`  warm-up: both servers at once, ${plan.warmupSeconds} s`);
  await together(plan.warmupSeconds);
  responses = 0;
  delivered = 0;

  log(`  simultaneous: both servers on the shared core, ${Math.round(plan.connections / 2)} connections each, ${plan.seconds} s rounds`);
  const shared: number[] = [];
  for (let i = 0; i < plan.rounds; i += 1) {
    const round = await together(plan.seconds);
    shared.push(round.metered.rps / round.bare.rps);
    log(`    bare ${Math.round(round.bare.rps)} req/s, metered ${Math.round(round.metered.rps)} req/s: ${(round.metered.rps / round.bare.rps).toFixed(3)}×`);
  }

  const alternate = async (label: string, connections: number): Promise<Array<{ bare: Sample; metered: Sample }>> => {
    log(`  ${label}`);
    const pairs: Array<{ bare: Sample; metered: Sample }> = [];
    for (let i = 0; i < plan.pairs; i += 1) {
      const order = i % 2 === 0 ? (['bare', 'metered'] as const) : (['metered', 'bare'] as const);
      const pair: Partial<Record<'bare' | 'metered', Sample>> = {};
      for (const name of order) {
        pair[name] = await solo(name === 'bare' ? bare : metered, { connections, seconds: plan.seconds });
        show(name, pair[name]);
      }
      pairs.push(pair as { bare: Sample; metered: Sample });
    }
    return pairs;
  };
  const saturated = await alternate(`alternating, saturation: ${plan.connections} connections, ${plan.seconds} s runs`, plan.connections);
  const serial = await alternate(`alternating, latency: ${plan.latencyConnections} connection(s), ${plan.seconds} s runs`, plan.latencyConnections);

  const figures = (pick: 'bare' | 'metered'): VariantFigures => ({
    rps: median(saturated.map((p) => p[pick].rps)),
    cpuUs: median(saturated.map((p) => p[pick].cpuUs)),
    cores: median(saturated.map((p) => p[pick].cores)),
    p50: median(saturated.map((p) => p[pick].p50)),
    p99: median(saturated.map((p) => p[pick].p99)),
    serialP50: median(serial.map((p) => p[pick].p50)),
    serialP99: median(serial.map((p) => p[pick].p99)),
  });
  return {
    bare: figures('bare'),
    metered: figures('metered'),
    sharedRatio: median(shared),
    alternatingRatio: median(saturated.map((p) => p.metered.rps / p.bare.rps)),
    cpuRatio: median(saturated.map((p) => p.metered.cpuUs / p.bare.cpuUs)),
    addedP50: median(serial.map((p) => p.metered.p50 - p.bare.p50)),
    addedP99: median(serial.map((p) => p.metered.p99 - p.bare.p99)),
    addedP99Saturated: median(saturated.map((p) => p.metered.p99 - p.bare.p99)),
    responses,
    delivered,
    reporter: await metered.call<Delivery>('flush'),
    errors,
  };
}
