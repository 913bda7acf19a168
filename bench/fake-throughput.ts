// Throughput of @metered/testing's meter event stream: the fake runs in a child process, undici drives it from this one.
//
//   npx tsx bench/fake-throughput.ts [--seconds 5] [--connections 8] [--in-flight 32] [--log-bodies] [--cpu-prof]
//
// --cpu-prof writes a V8 profile of the fake's process to the working directory.
//
// Server and load generator share 2 cores; separate processes keep one from starving the other's event loop.
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

// The source, not the package: the package resolves to dist/, which may be stale or unbuilt.
import { STREAM_MAX_EVENTS, startFakeStripe } from '../packages/testing/src';
import type { FakeStripeStats } from '../packages/testing/src';

// undici is a declared devDependency of @metered/testing; resolve it from there, not from whatever the root hoisted.
const { Pool } = createRequire(path.join(__dirname, '../packages/testing/package.json'))('undici') as typeof import('undici');

interface Ready {
  type: 'ready';
  meterEventsUrl: string;
  token: string;
}
interface Stats {
  type: 'stats';
  stats: FakeStripeStats;
  rssMb: number;
  /** CPU time the fake's process spent since it was ready, in ms: cost per request, less sensitive to other load than wall time. */
  cpuMs: number;
}
type ChildMessage = Ready | Stats;

const STRIPE_VERSION = '2026-09-30.endive';
const MAX_REQUESTS = 1_000_000;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i === -1 ? Number.NaN : Number(process.argv[i + 1]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

async function serve(): Promise<void> {
  const fake = await startFakeStripe({ logBodies: process.argv.includes('--log-bodies') });
  const send = (message: ChildMessage): void => {
    process.send?.(message);
  };
  const cpuAtReady = process.cpuUsage();
  process.on('message', (message: string) => {
    if (message === 'stats') {
      const cpu = process.cpuUsage(cpuAtReady);
      send({ type: 'stats', stats: fake.stats(), rssMb: Math.round(process.memoryUsage().rss / 2 ** 20), cpuMs: (cpu.user + cpu.system) / 1000 });
    }
    if (message === 'stop') void fake.close().then(() => process.exit(0));
  });
  send({ type: 'ready', meterEventsUrl: fake.meterEventsUrl, token: fake.createSession().authentication_token });
}

/** 100 events shaped like a reporter's: unique identifier, timestamp, string value, 50 customers. */
function body(requestNo: number): string {
  const timestamp = new Date().toISOString();
  const events: string[] = [];
  for (let i = 0; i < STREAM_MAX_EVENTS; i++) {
    events.push(
      `{"event_name":"api_requests","identifier":"bench-${requestNo}-${i}","timestamp":"${timestamp}","payload":{"stripe_customer_id":"cus_bench_${i % 50}","value":"${1 + (i % 7)}"}}`,
    );
  }
  return `{"events":[${events.join(',')}]}`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

async function drive(): Promise<void> {
  const seconds = flag('seconds', 5);
  const connections = flag('connections', 8);
  const inFlight = flag('in-flight', 32);
  const profile = process.argv.includes('--cpu-prof') ? ['--cpu-prof'] : [];
  const child = fork(__filename, ['--serve', ...process.argv.slice(2)], { execArgv: [...process.execArgv, ...profile] });
  const next = <T extends ChildMessage['type']>(type: T): Promise<Extract<ChildMessage, { type: T }>> =>
    new Promise((resolve) => {
      const onMessage = (message: ChildMessage): void => {
        if (message.type !== type) return;
        child.off('message', onMessage);
        resolve(message as Extract<ChildMessage, { type: T }>);
      };
      child.on('message', onMessage);
    });
  const ready = await next('ready');
  const pool = new Pool(ready.meterEventsUrl, { connections, pipelining: 1 });
  const headers = {
    authorization: `Bearer ${ready.token}`,
    'content-type': 'application/json',
    'stripe-version': STRIPE_VERSION,
  };

  let sent = 0;
  let ok = 0;
  let failed = 0;
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline && sent < MAX_REQUESTS) {
      const payload = body(sent++);
      const t0 = performance.now();
      const res = await pool.request({ path: '/v2/billing/meter_event_stream', method: 'POST', headers, body: payload });
      await res.body.text();
      latencies.push(performance.now() - t0);
      if (res.statusCode === 200) ok++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, () => worker()));
  const elapsed = (performance.now() - started) / 1000;
  child.send('stats');
  const { stats, rssMb, cpuMs } = await next('stats');
  child.send('stop');
  await pool.close();

  latencies.sort((a, b) => a - b);
  console.log(`fake-throughput: ${seconds}s, ${connections} keep-alive connections, ${inFlight} requests in flight, ${STREAM_MAX_EVENTS} events/request`);
  console.log(`  requests/s : ${Math.round(ok / elapsed)}  (${ok} ok, ${failed} failed)`);
  console.log(`  events/s   : ${Math.round((ok * STREAM_MAX_EVENTS) / elapsed)}`);
  console.log(`  latency ms : p50 ${percentile(latencies, 50).toFixed(2)}, p99 ${percentile(latencies, 99).toFixed(2)}`);
  console.log(`  fake       : ${stats.acceptedEvents} events accepted, ${stats.rejectedEvents} rejected, rss ${rssMb} MiB`);
  console.log(
    `  fake CPU   : ${(cpuMs / ok).toFixed(3)} ms per request → ${Math.round((ok * 1000) / cpuMs)} requests/s per core of the fake's CPU time`,
  );
  if (stats.acceptedEvents !== ok * STREAM_MAX_EVENTS) {
    console.error('  mismatch: the fake did not count every event it acknowledged');
    process.exitCode = 1;
  }
}

if (process.argv.includes('--serve')) void serve();
else void drive();
