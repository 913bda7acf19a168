// Scenarios 1–2 as report sections: Express, and NestJS on both platforms, bare against metered.
import { placement } from '../lib/placement';
import { Child } from '../lib/proc';
import { fmt, section } from '../lib/report';
import type { Section } from '../lib/report';
import type { FakeReady } from '../roles/fake-stripe';
import type { ServerKind } from '../roles/shared';
import { measureOverhead } from './overhead';
import type { OverheadPlan } from './overhead';
import { startServer } from './servers';

export const THROUGHPUT_TARGET = 0.97;
export const ADDED_P99_TARGET_MS = 0.2;

const TITLES: Record<ServerKind, string> = {
  express: 'Overhead, Express (`meterUsage`)',
  'nest-express': 'Overhead, NestJS on platform-express (`@MeterUsage`)',
  'nest-fastify': 'Overhead, NestJS on platform-fastify (`@MeterUsage`)',
};

export async function httpOverhead(id: string, kind: ServerKind, plan: OverheadPlan, log: (line: string) => void): Promise<Section> {
  const result = section(id, TITLES[kind]);
  const fake = await Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools });
  const servers = await Promise.all([startServer(kind, 'bare', fake.ready), startServer(kind, 'metered', fake.ready)]);
  try {
    const [bare, metered] = servers;
    const r = await measureOverhead(bare, metered, fake, plan, log);
    result.checks.push(
      {
        metric: 'throughput, metered ÷ bare (simultaneous rounds)',
        measured: fmt.ratio(r.sharedRatio),
        baseline: '1.000× (bare)',
        target: `≥ ${THROUGHPUT_TARGET}×`,
        met: r.sharedRatio >= THROUGHPUT_TARGET,
      },
      {
        metric: 'added p99 latency, one request at a time',
        measured: fmt.signedMs(r.addedP99),
        baseline: `${fmt.ms(r.bare.serialP99)} p99 bare`,
        target: `≤ +${ADDED_P99_TARGET_MS} ms`,
        met: r.addedP99 <= ADDED_P99_TARGET_MS,
      },
    );
    result.tables.push({
      head: ['', 'bare', 'metered', 'metered vs bare'],
      rows: [
        ['throughput, simultaneous rounds (ratio)', '', '', fmt.ratio(r.sharedRatio)],
        ['throughput, alternating runs', `${fmt.int(r.bare.rps)} req/s`, `${fmt.int(r.metered.rps)} req/s`, fmt.ratio(r.alternatingRatio)],
        ['server CPU per request', fmt.us(r.bare.cpuUs), fmt.us(r.metered.cpuUs), fmt.ratio(r.cpuRatio)],
        ['server CPU use at saturation', `${r.bare.cores.toFixed(2)} cores`, `${r.metered.cores.toFixed(2)} cores`, ''],
        [`p50 / p99 at saturation (${plan.connections} connections)`, `${fmt.ms(r.bare.p50)} / ${fmt.ms(r.bare.p99)}`, `${fmt.ms(r.metered.p50)} / ${fmt.ms(r.metered.p99)}`, `p99 ${fmt.signedMs(r.addedP99Saturated)}`],
        [
          `p50 / p99, ${plan.latencyConnections} connection`,
          `${fmt.ms(r.bare.serialP50)} / ${fmt.ms(r.bare.serialP99)}`,
          `${fmt.ms(r.metered.serialP50)} / ${fmt.ms(r.metered.serialP99)}`,
          `p50 ${fmt.signedMs(r.addedP50)}, p99 ${fmt.signedMs(r.addedP99)}`,
        ],
      ],
    });
    result.notes.push(
      `Events: the fake accepted ${fmt.int(r.delivered)} events for ${fmt.int(r.responses)} metered 2xx responses in the measured runs ` +
        `(a request still in flight when a run stops is answered and billed, but not counted by the load generator). ` +
        `Reporter at the end: ${fmt.int(r.reporter.delivered)} delivered, ${fmt.int(r.reporter.dropped)} dropped, ${fmt.int(r.reporter.failed)} failed.`,
    );
    if (r.errors > 0) result.notes.push(`${fmt.int(r.errors)} connection errors or non-2xx answers.`);
  } finally {
    await Promise.all([...servers.map((server) => server.stop()), fake.stop()]);
  }
  return result;
}
