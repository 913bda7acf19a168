// Scenarios 1–2 as report sections: Express, and NestJS on both platforms, bare against metered.
import type { Child } from '../lib/proc';
import { fmt, section } from '../lib/report';
import type { Section } from '../lib/report';
import type { FakeReady } from '../roles/fake-stripe';
import { EXPRESS_PEERS, NEST_PEERS } from '../roles/shared';
import type { PeerVariant, ServerKind, ServerReady } from '../roles/shared';
import { simultaneous } from '../lib/simultaneous';
import { median } from '../lib/stats';
import { measureOverhead } from './overhead';
import type { OverheadPlan } from './overhead';
import { startBackgroundFake, startServer } from './servers';

/**
 * Throughput targets (issue 14): Express at the floor response-time sets (one header, nothing after
 * the response); Nest within the price of its cheapest hooks on each platform.
 */
export const THROUGHPUT_TARGETS: Record<ServerKind, number> = { express: 0.9, 'nest-express': 0.9, 'nest-fastify': 0.85 };
export const ADDED_P99_TARGET_MS = 0.3;

const TITLES: Record<ServerKind, string> = {
  express: 'Overhead, Express (`meterUsage`)',
  'nest-express': 'Overhead, NestJS on platform-express (`@MeterUsage`)',
  'nest-fastify': 'Overhead, NestJS on platform-fastify (`@MeterUsage`)',
};

/** What each peer is, as its row reads. */
const PEER_LABELS: Record<PeerVariant, string> = {
  morgan: 'morgan (`combined` format, to a file)',
  'pino-http': 'pino-http (defaults, to a file)',
  'express-prom-bundle': 'express-prom-bundle (method and path labels)',
  'response-time': 'response-time (sets one header)',
  'nestjs-pino': 'nestjs-pino (defaults, to a file)',
  'noop-interceptor': 'a global interceptor that does nothing',
};

interface PeerFigures {
  peer: PeerVariant;
  ratio: number;
  cpuUs: number;
  bareCpuUs: number;
}

/**
 * Each peer against the same warm bare server, by the method the target is judged on (simultaneous
 * rounds): what apps already pay per request, next to what metering costs.
 */
async function measurePeers(kind: ServerKind, bare: Child<ServerReady>, fake: FakeReady, plan: OverheadPlan, log: (line: string) => void): Promise<PeerFigures[]> {
  const peers = kind === 'express' ? EXPRESS_PEERS : NEST_PEERS;
  const connections = Math.max(1, Math.round(plan.connections / 2));
  const figures: PeerFigures[] = [];
  for (const peer of peers) {
    const server = await startServer(kind, peer, fake);
    try {
      // A fresh server next to a bare one that is already warm: as long a warm-up as the pair had.
      await simultaneous(bare, server, connections, plan.warmupSeconds);
      const rounds: Array<{ ratio: number; cpuUs: number; bareCpuUs: number }> = [];
      for (let i = 0; i < plan.rounds; i += 1) {
        const { a, b } = await simultaneous(bare, server, connections, plan.seconds);
        rounds.push({ ratio: b.rps / a.rps, cpuUs: b.cpuUs, bareCpuUs: a.cpuUs });
      }
      const result = { peer, ratio: median(rounds.map((r) => r.ratio)), cpuUs: median(rounds.map((r) => r.cpuUs)), bareCpuUs: median(rounds.map((r) => r.bareCpuUs)) };
      log(`    peer ${peer}: ${result.ratio.toFixed(3)}× of bare (${result.cpuUs.toFixed(0)} vs ${result.bareCpuUs.toFixed(0)} µs CPU/request)`);
      figures.push(result);
    } finally {
      await server.stop();
    }
  }
  return figures;
}

export async function httpOverhead(id: string, kind: ServerKind, plan: OverheadPlan, log: (line: string) => void): Promise<Section> {
  const result = section(id, TITLES[kind]);
  const fake = await startBackgroundFake();
  const servers = await Promise.all([startServer(kind, 'bare', fake.ready), startServer(kind, 'metered', fake.ready)]);
  try {
    const [bare, metered] = servers;
    const r = await measureOverhead(bare, metered, fake, plan, log);
    result.checks.push(
      {
        metric: 'throughput, metered ÷ bare (simultaneous rounds)',
        measured: fmt.ratio(r.sharedRatio),
        baseline: '1.000× (bare)',
        target: `≥ ${THROUGHPUT_TARGETS[kind].toFixed(2)}×`,
        met: r.sharedRatio >= THROUGHPUT_TARGETS[kind],
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

    log('  peers: each against bare, simultaneous rounds');
    const peers = await measurePeers(kind, bare, fake.ready, plan, log);
    result.tables.push({
      head: ['next to what apps already run (simultaneous rounds, each against bare)', 'throughput vs bare', 'server CPU per request (peer / bare, same rounds)'],
      rows: [
        [kind === 'express' ? 'metered (`meterUsage`, delivery included)' : 'metered (`@MeterUsage`, delivery included)', fmt.ratio(r.sharedRatio), 'see above'],
        ...peers.map((p) => [PEER_LABELS[p.peer], fmt.ratio(p.ratio), `${fmt.us(p.cpuUs)} / ${fmt.us(p.bareCpuUs)}`]),
      ],
    });
  } finally {
    await Promise.all([...servers.map((server) => server.stop()), fake.stop()]);
  }
  return result;
}
