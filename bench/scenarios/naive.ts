// Scenario 3: meterUsage against the naive approach (await stripe.v2.billing.meterEvents.create() in the handler), Stripe 20 ms away.
import { load } from '../lib/load';
import type { LoadResult } from '../lib/load';
import { placement } from '../lib/placement';
import { Child } from '../lib/proc';
import { fmt, section } from '../lib/report';
import type { Section } from '../lib/report';
import { median } from '../lib/stats';
import type { FakeCounts, FakeReady } from '../roles/fake-stripe';
import type { ServerReady, ServerVariant } from '../roles/shared';
import { startServer } from './servers';

export const NAIVE_RATIO_TARGET = 10;
export const STRIPE_LATENCY_MS = 20;
/** Metered p50 within this of bare means the response never waited for Stripe (naive adds ≥ 20 ms). */
const SAME_LATENCY_MS = 1;

export interface NaivePlan {
  warmupSeconds: number;
  /** Rounds per concurrency level; each runs bare, metered and naive once, in a rotating order. */
  rounds: number;
  seconds: number;
  /** Concurrency levels; the targets are judged at the first. */
  connections: number[];
}

const VARIANTS: ServerVariant[] = ['bare', 'metered', 'naive'];

interface Level {
  connections: number;
  samples: Map<ServerVariant, LoadResult[]>;
  events: Map<ServerVariant, { responses: number; accepted: number; cpuUs: number[] }>;
}

async function measureLevel(byVariant: Map<ServerVariant, Child<ServerReady>>, fake: Child<FakeReady>, connections: number, plan: NaivePlan, log: (line: string) => void): Promise<Level> {
  const level: Level = {
    connections,
    samples: new Map(VARIANTS.map((variant) => [variant, []])),
    events: new Map(VARIANTS.map((variant) => [variant, { responses: 0, accepted: 0, cpuUs: [] }])),
  };
  log(`  ${connections} connections, ${plan.seconds} s runs, order rotating each round`);
  for (let round = 0; round < plan.rounds; round += 1) {
    for (let k = 0; k < VARIANTS.length; k += 1) {
      const variant = VARIANTS[(round + k) % VARIANTS.length]!;
      const server = byVariant.get(variant)!;
      await server.call('flush');
      await fake.call('reset');
      const cpu0 = await server.call<number>('cpuMs');
      const sample = await load(server.ready.url, { connections, seconds: plan.seconds });
      const cpuUs = (((await server.call<number>('cpuMs')) - cpu0) * 1000) / Math.max(1, sample.ok);
      await server.call('flush');
      const counts = await fake.call<FakeCounts>('counts');
      level.samples.get(variant)!.push(sample);
      const tally = level.events.get(variant)!;
      tally.responses += sample.ok;
      tally.accepted += counts.acceptedEvents;
      tally.cpuUs.push(cpuUs);
      log(`    ${variant.padEnd(7)} ${Math.round(sample.rps).toString().padStart(6)} req/s  p50 ${sample.p50.toFixed(2)} ms  p99 ${sample.p99.toFixed(2)} ms  ${cpuUs.toFixed(0)} µs CPU/req`);
    }
  }
  return level;
}

export async function naiveComparison(id: string, plan: NaivePlan, log: (line: string) => void): Promise<Section> {
  const result = section(id, `Against the naive approach (Stripe ${STRIPE_LATENCY_MS} ms away)`);
  const fake = await Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools, config: { latencyMs: STRIPE_LATENCY_MS } });
  const servers = await Promise.all(VARIANTS.map((variant) => startServer('express', variant, fake.ready)));
  const byVariant = new Map<ServerVariant, Child<ServerReady>>(VARIANTS.map((variant, i) => [variant, servers[i]!]));
  try {
    for (const server of servers) await load(server.ready.url, { connections: plan.connections[0]!, seconds: plan.warmupSeconds });
    const levels: Level[] = [];
    for (const connections of plan.connections) levels.push(await measureLevel(byVariant, fake, connections, plan, log));

    const med = (level: Level, variant: ServerVariant, pick: (s: LoadResult) => number): number => median(level.samples.get(variant)!.map(pick));
    const rps = (level: Level, variant: ServerVariant): number => med(level, variant, (s) => s.rps);
    // Ratios are taken within each round (its runs are minutes apart at most), then the median.
    const roundRatio = (level: Level, top: ServerVariant): number => {
      const naive = level.samples.get('naive')!;
      return median(level.samples.get(top)!.map((sample, i) => sample.rps / naive[i]!.rps));
    };
    const first = levels[0]!;
    const ratio = roundRatio(first, 'metered');
    const addedP50 = med(first, 'metered', (s) => s.p50) - med(first, 'bare', (s) => s.p50);
    result.checks.push(
      {
        metric: `throughput, metered ÷ naive (${first.connections} connections)`,
        measured: `${ratio.toFixed(1)}× (medians ${fmt.int(rps(first, 'metered'))} vs ${fmt.int(rps(first, 'naive'))} req/s)`,
        baseline: `${fmt.int(rps(first, 'naive'))} req/s naive; bare ÷ naive ${roundRatio(first, 'bare').toFixed(1)}×`,
        target: `≥ ${NAIVE_RATIO_TARGET}×`,
        met: ratio >= NAIVE_RATIO_TARGET,
      },
      {
        metric: `latency: metered p50 − bare p50 (${first.connections} connections)`,
        measured: `${fmt.signedMs(addedP50)} (naive ${fmt.signedMs(med(first, 'naive', (s) => s.p50) - med(first, 'bare', (s) => s.p50))})`,
        baseline: `${fmt.ms(med(first, 'bare', (s) => s.p50))} p50 bare`,
        target: `no Stripe round trip in the response (within +${SAME_LATENCY_MS} ms of bare)`,
        met: addedP50 < SAME_LATENCY_MS,
      },
    );
    result.tables.push({
      head: ['connections', 'server', 'req/s', 'p50', 'p99', 'server CPU/request', 'events accepted / 2xx responses', 'metered ÷ naive', 'bare ÷ naive (ceiling)'],
      rows: levels.flatMap((level) =>
        VARIANTS.map((variant, i) => {
          const tally = level.events.get(variant)!;
          return [
            i === 0 ? String(level.connections) : '',
            variant === 'naive' ? 'naive (awaits `meterEvents.create()`)' : variant === 'metered' ? 'metered (`meterUsage`)' : 'bare',
            fmt.int(rps(level, variant)),
            fmt.ms(med(level, variant, (s) => s.p50)),
            fmt.ms(med(level, variant, (s) => s.p99)),
            fmt.us(median(tally.cpuUs)),
            variant === 'bare' ? '—' : `${fmt.int(tally.accepted)} / ${fmt.int(tally.responses)}`,
            i === 0 ? `${roundRatio(level, 'metered').toFixed(1)}×` : '',
            i === 0 ? `${roundRatio(level, 'bare').toFixed(1)}×` : '',
          ];
        }),
      ),
    });
    result.notes.push(
      `The naive server's throughput is bounded twice. By latency (Little's law): ${first.connections} connections ÷ ${STRIPE_LATENCY_MS} ms ≤ ${fmt.int((first.connections * 1000) / STRIPE_LATENCY_MS)} req/s. By CPU, once there are enough connections: every request also makes an outbound call to Stripe (HTTP here, HTTPS in production). ` +
        `"bare ÷ naive" is what metering that cost nothing at all would reach; no implementation can beat it.`,
      `Stripe's own limits cap the naive approach in production, which the fake here does not enforce: one \`meter_events\` call per request, at most 1,000/s live (25/s in a sandbox), and one call at a time per customer and meter (409 otherwise — the naive server here rotates over 1,000 customers to stay clear of it). The stream the reporter uses takes 100 events per request, 10,000 requests/s.`,
      'The naive handler uses the official `stripe` package (v23.1.0), pointed at the fake with host/port/protocol options; each variant’s events are counted by the fake after every run.',
    );
  } finally {
    await Promise.all([...servers.map((server) => server.stop()), fake.stop()]);
  }
  return result;
}
