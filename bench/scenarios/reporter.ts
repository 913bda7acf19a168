// Scenarios 4–6: the reporter on its own — delivery throughput, pacing under a rate limit, report() cost and queue memory.
import { placement } from '../lib/placement';
import { Child } from '../lib/proc';
import { fmt, section } from '../lib/report';
import type { Section } from '../lib/report';
import type { FakeCounts, FakeReady } from '../roles/fake-stripe';
import type { HotPathResult, MemoryResult, ThroughputResult } from '../roles/reporter-bench';

export const STREAM_TARGET_EVENTS_PER_SECOND = 100_000;
export const PACING_SHARE_TARGET = 0.98;
export const HOT_PATH_TARGET_NS = 1000;
export const BYTES_PER_EVENT_TARGET = 300;

export interface ReporterPlan {
  delivery: { seconds: number; warmupSeconds: number };
  pacing: { rps: number; seconds: number; warmupSeconds: number };
  hotPath: { runs: number; ops: number };
  memory: { events: number };
}

async function withFake<T>(options: object, fn: (fake: Child<FakeReady>) => Promise<T>): Promise<T> {
  const fake = await Child.start<FakeReady>('roles/fake-stripe.ts', { cpus: placement.tools, config: options });
  try {
    return await fn(fake);
  } finally {
    await fake.stop();
  }
}

async function withReporter<T>(fake: FakeReady, nodeFlags: string[], fn: (bench: Child) => Promise<T>): Promise<T> {
  const bench = await Child.start('roles/reporter-bench.ts', { cpus: placement.server, config: { fake }, nodeFlags });
  try {
    return await fn(bench);
  } finally {
    await bench.stop();
  }
}

export async function deliveryThroughput(id: string, plan: ReporterPlan, log: (line: string) => void): Promise<Section> {
  const result = section(id, 'Delivery throughput, `report()` to acknowledged by the fake');
  const rows: string[][] = [];
  for (const mode of ['stream', 'direct'] as const) {
    const figures = await withFake({}, (fake) =>
      withReporter(fake.ready, [], async (bench) => {
        const r = await bench.call<ThroughputResult>('delivery', { mode, ...plan.delivery });
        return { r, fake: await fake.call<FakeCounts>('counts') };
      }),
    );
    const { r } = figures;
    log(`  ${mode}: ${fmt.int(r.eventsPerSecond)} events/s (${fmt.int(r.events)} events in ${r.seconds.toFixed(2)} s, reporter ${r.cores.toFixed(2)} cores, fake ${(figures.fake.cpuMs / 1000).toFixed(1)} CPU-s in total)`);
    rows.push([
      mode === 'stream' ? 'stream (`meter_event_stream`, batches of 100)' : 'direct (`meter_events`, one event per request)',
      fmt.int(r.eventsPerSecond),
      fmt.int(r.batches / r.seconds),
      `${fmt.int(r.events)} in ${r.seconds.toFixed(1)} s`,
      `${r.cores.toFixed(2)} cores, ${r.cpuUsPerEvent.toFixed(1)} µs/event`,
      `${fmt.int(r.dropped)} / ${fmt.int(r.failed)}`,
    ]);
    if (mode === 'stream') {
      result.checks.push({
        metric: 'stream mode, events/s acknowledged (pacing off)',
        measured: fmt.int(r.eventsPerSecond),
        baseline: '—',
        target: `≥ ${fmt.int(STREAM_TARGET_EVENTS_PER_SECOND)}`,
        met: r.eventsPerSecond >= STREAM_TARGET_EVENTS_PER_SECOND,
      });
    }
  }
  result.tables.push({ head: ['mode', 'events/s', 'requests/s', 'events', 'reporter CPU', 'dropped / failed'], rows });
  result.notes.push(
    'Every default but pacing (`maxRequestsPerSecond: 1,000,000`) and the queue bound; the producer keeps a backlog so delivery never waits for intake (it sleeps 1 ms when the backlog is full, so the reporter CPU is the reporter’s work, `report()` included), and the window closes when `flush()` resolves (the last event acknowledged).',
    'The reporter runs on the code-under-test CPU, the fake on the other: on 2 cores the fake’s own parsing and validation (~0.7 ms of CPU per 100-event request, `bench/fake-throughput.ts`) is a ceiling of its own.',
  );
  return result;
}

export async function pacing(id: string, plan: ReporterPlan, log: (line: string) => void): Promise<Section> {
  const { rps, seconds, warmupSeconds } = plan.pacing;
  const result = section(id, `Pacing at L = ${fmt.int(rps)} requests/s against a fake enforcing L`);
  // The log keeps every request of the run, so the fake can count its 429s itself.
  const logSize = Math.ceil(rps * (seconds + warmupSeconds + 5) * 1.5);
  const { r, fake } = await withFake({ rateLimit: { requestsPerSecond: rps }, maxLoggedRequests: logSize }, (fakeChild) =>
    withReporter(fakeChild.ready, [], async (bench) => {
      const measured = await bench.call<ThroughputResult>('pacing', plan.pacing);
      return { r: measured, fake: await fakeChild.call<FakeCounts>('counts') };
    }),
  );
  const rate = r.batches / r.seconds;
  log(`  ${rate.toFixed(1)} delivered requests/s over ${r.seconds.toFixed(1)} s (${(rate / rps).toFixed(4)} of L), 429s: reporter ${r.rateLimited}, fake ${fake.rateLimited}`);
  result.checks.push(
    {
      metric: `delivered requests/s over ${seconds} s ÷ L`,
      measured: `${(rate / rps).toFixed(4)} (${rate.toFixed(1)}/s)`,
      baseline: `L = ${fmt.int(rps)}/s`,
      target: `≥ ${PACING_SHARE_TARGET}`,
      met: rate / rps >= PACING_SHARE_TARGET,
    },
    {
      metric: '429 answers',
      measured: `${fake.rateLimited} (fake) / ${r.rateLimited} (reporter)`,
      baseline: '—',
      target: '0',
      met: fake.rateLimited === 0 && r.rateLimited === 0,
    },
  );
  result.notes.push(
    `Stream mode, batches of 100: ${fmt.int(r.events)} events in ${fmt.int(r.batches)} requests during the ${r.seconds.toFixed(1)} s window, after ${warmupSeconds} s of warm-up; the fake logged ${fmt.int(fake.requests)} requests in all, session creation included (every endpoint spends the fake's tokens).`,
    `The fake's token bucket is its default for \`rateLimit: { requestsPerSecond: L }\` (burst = L); the reporter's own bucket bursts at most L/100, so it never relies on the fake's burst.`,
  );
  return result;
}

export async function hotPathAndMemory(id: string, plan: ReporterPlan, log: (line: string) => void): Promise<Section> {
  const result = section(id, 'Hot path and memory');
  const hot = await withReporter({ url: 'http://127.0.0.1:9', meterEventsUrl: 'http://127.0.0.1:9', apiKey: 'sk_test_bench' }, [], async (bench) => ({
    adapter: await bench.call<HotPathResult>('hotPath', { ...plan.hotPath, withTimestamp: true }),
    minimal: await bench.call<HotPathResult>('hotPath', { ...plan.hotPath, withTimestamp: false }),
  }));
  log(`  report(): ${hot.adapter.runs.map((ns) => ns.toFixed(0)).join(', ')} ns/op (adapter-shaped input); ${hot.minimal.runs.map((ns) => ns.toFixed(0)).join(', ')} (minimal)`);
  const mem = await withFake({}, async (fake) => {
    await fake.call('outage', true);
    return withReporter(fake.ready, ['--expose-gc'], (bench) => bench.call<MemoryResult>('memory', plan.memory));
  });
  log(`  memory: ${mem.bytesPerEvent.toFixed(0)} B/event (${fmt.int(mem.queued)} pending, heap ${mem.heapBeforeMb.toFixed(1)} → ${mem.heapAfterMb.toFixed(1)} MiB)`);
  result.checks.push(
    {
      metric: '`report()` ns/op, median of runs (adapter-shaped input)',
      measured: `${hot.adapter.median.toFixed(0)} ns`,
      baseline: '—',
      target: `≤ ${HOT_PATH_TARGET_NS} ns`,
      met: hot.adapter.median <= HOT_PATH_TARGET_NS,
    },
    {
      metric: `heap per queued event, ${fmt.int(plan.memory.events)} queued during an outage`,
      measured: `${mem.bytesPerEvent.toFixed(0)} B`,
      baseline: '—',
      target: `≤ ${BYTES_PER_EVENT_TARGET} B`,
      met: mem.bytesPerEvent <= BYTES_PER_EVENT_TARGET,
    },
  );
  result.tables.push({
    head: ['measurement', 'result', 'runs'],
    rows: [
      [
        '`report({ eventName, customerId, value, timestamp, identifier: undefined })` (what the adapters pass)',
        `${hot.adapter.median.toFixed(0)} ns/op`,
        hot.adapter.runs.map((ns) => ns.toFixed(0)).join(', '),
      ],
      ['`report({ eventName, customerId })`', `${hot.minimal.median.toFixed(0)} ns/op`, hot.minimal.runs.map((ns) => ns.toFixed(0)).join(', ')],
      [
        `heap per queued event (fake in outage, \`--expose-gc\`, heap after GC)`,
        `${mem.bytesPerEvent.toFixed(0)} B`,
        `${fmt.int(mem.queued)} pending, ${mem.dropped} dropped; heap ${mem.heapBeforeMb.toFixed(1)} → ${mem.heapAfterMb.toFixed(1)} MiB`,
      ],
    ],
  });
  result.notes.push(
    `\`report()\`: ${fmt.int(plan.hotPath.ops)} calls per run into a fresh reporter (the queue grows, as in a burst), after two discarded warm-up runs; 1,000 customers in rotation; nothing is sent during the loop.`,
    'Memory: events reported 10,000 per event-loop turn while every request fails with 503 (the reporter keeps retrying, holding every event with its identifier); the figure includes the queue’s ring buffer.',
  );
  return result;
}
