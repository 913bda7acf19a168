// Scenario 7: the shared Redis queue — events/s from report() through Redis to the fake, and report()'s cost with the Redis store.
import net from 'node:net';
import { placement } from '../lib/placement';
import { Child } from '../lib/proc';
import { fmt, section } from '../lib/report';
import type { Section } from '../lib/report';
import type { FakeCounts, FakeReady } from '../roles/fake-stripe';
import type { RedisBenchConfig, RedisHotPath, RedisThroughput } from '../roles/redis-bench';

export const REDIS_THROUGHPUT_TARGET = 50_000;
export const REDIS_REPORT_TARGET_NS = 3000;

export interface RedisPlan {
  /** Events pushed through Redis to the fake. */
  events: number;
  /** report() timing: runs of `ops` calls each. */
  hotPath: { runs: number; ops: number };
}

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || 6379) });
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(false));
    socket.once('connect', () => (socket.destroy(), resolve(true)));
  });
}

export async function redisQueue(id: string, plan: RedisPlan, log: (line: string) => void): Promise<Section> {
  const result = section(id, 'Shared Redis queue (`@metered/redis`): `report()` → Redis Stream → the fake');
  if (!(await reachable(REDIS_URL))) {
    result.notes.push(`Skipped: Redis is unreachable at ${REDIS_URL}.`);
    log(`  skipped: Redis unreachable at ${REDIS_URL}`);
    return result;
  }
  const fake = await Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools, config: {} });
  try {
    // The reporter runs in its own process on the code-under-test CPU, like scenario 4's; the fake on the other.
    const bench = await Child.start<Record<string, never>>('roles/redis-bench.ts', { cpus: placement.server, config: { fake: fake.ready, redisUrl: REDIS_URL } satisfies RedisBenchConfig });
    let through: RedisThroughput;
    let hot: RedisHotPath;
    try {
      through = await bench.call<RedisThroughput>('throughput', plan.events);
      hot = await bench.call<RedisHotPath>('hotPath', plan.hotPath);
    } finally {
      await bench.stop();
    }
    const { seconds, settled } = through;
    const counts = await fake.call<FakeCounts>('counts');
    const eventsPerSecond = plan.events / seconds;
    log(`  through Redis: ${fmt.int(eventsPerSecond)} events/s (${fmt.int(plan.events)} in ${seconds.toFixed(2)} s, reporter CPU ${through.cpuUsPerEvent.toFixed(1)} µs/event, fake accepted ${fmt.int(counts.acceptedEvents)}, settled ${settled})`);
    const ns = hot.nsPerOp;
    const samples = hot.samples;
    log(`  report() with the Redis store: ${ns.toFixed(0)} ns/op median of ${plan.hotPath.runs} runs × ${fmt.int(plan.hotPath.ops)}`);

    result.tables.push({
      head: ['measure', 'value', 'detail'],
      rows: [
        ['events/s, `report()` → Redis → fake (stream, batches of 100)', fmt.int(eventsPerSecond), `${fmt.int(plan.events)} events in ${seconds.toFixed(2)} s; reporter CPU ${through.cpuUsPerEvent.toFixed(1)} µs/event (its own process, code-under-test CPU); fake accepted ${fmt.int(counts.acceptedEvents)}`],
        ['`report()` ns/op, Redis store (median)', ns.toFixed(0), `${plan.hotPath.runs} runs × ${fmt.int(plan.hotPath.ops)} calls; samples ${samples.map((s) => s.toFixed(0)).join(', ')}`],
      ],
    });
    result.checks.push({ metric: 'events/s through Redis', measured: fmt.int(eventsPerSecond), baseline: '—', target: `≥ ${fmt.int(REDIS_THROUGHPUT_TARGET)}`, met: eventsPerSecond >= REDIS_THROUGHPUT_TARGET && settled });
    result.checks.push({ metric: '`report()` median, Redis store', measured: `${ns.toFixed(0)} ns`, baseline: '—', target: `≤ ${REDIS_REPORT_TARGET_NS} ns`, met: ns <= REDIS_REPORT_TARGET_NS });
    return result;
  } finally {
    await fake.stop();
  }
}
