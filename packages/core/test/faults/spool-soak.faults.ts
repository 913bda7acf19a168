// The soak: an Express app over a spool under steady traffic for 2.5 minutes, rotating faults and a 30 s outage; exact totals, no onError, flat RSS.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFakeStripe, trafficProblems } from '@metered/testing';
import type { FakeStripe, FaultHandle } from '@metered/testing';
import type { MeterStats } from '@metered/core';
import { totalsFor } from '../helpers';
import { startChild, tempDir } from '../spool/helpers';

jest.setTimeout(240_000);

const SECOND = 1000;
/** Traffic runs this long; the timeline below fills it. */
const TRAFFIC_MS = 150 * SECOND;
const WARMUP_MS = 15 * SECOND;
const RSS_EVERY_MS = 5 * SECOND;
/**
 * RSS may rise this much from the first third of the run to the last. V8 grows its old space in
 * steps of a few MiB before it settles, and SQLite's page cache (2 MiB by default) and the WAL's
 * shared memory fill up as the spool is used, so a healthy process still moves by 10–15 MiB; a leak
 * of one request's objects (a few KiB each) over the ~12,000 requests between the two thirds would
 * pass 30 MiB.
 */
const RSS_GROWTH_BOUND = 30 * 2 ** 20;
const WORKERS = 4;
/** Each worker waits this long between its requests: about 130 requests/s in all, a steady load that leaves the 2 cores room. */
const PACE_MS = 30;
/**
 * Waits until `ms` have passed by the wall clock. A bare `setTimeout` can end a few ms early by
 * `Date.now()`: libuv counts a timer from its loop time, cached when the loop iteration began.
 */
const holdFor = async (ms: number): Promise<void> => {
  const until = Date.now() + ms;
  for (let left = ms; left > 0; left = until - Date.now()) await sleep(left);
};
const CUSTOMERS = Array.from({ length: 8 }, (_, i) => `cus_soak_${i}`);
const ENDPOINT = 'meter_event_stream';

let fake: FakeStripe;
beforeAll(async () => {
  fake = await startFakeStripe({ seed: 23 });
});
afterAll(async () => {
  await fake.close();
});

interface FlushReport {
  flushed: { settled: boolean; pending: number };
  stats: MeterStats;
  errors: string[];
  drops: string[];
}

/** One fault kind at a time; the last phase runs them all together. */
function startPhase(kind: '500' | 'reset' | 'expiry' | 'all'): () => number {
  const handles: FaultHandle[] = [];
  let timer: NodeJS.Timeout | undefined;
  if (kind === '500' || kind === 'all') handles.push(fake.faults.fail({ endpoint: ENDPOINT, fraction: 0.2, status: 500 }));
  if (kind === 'reset' || kind === 'all') handles.push(fake.faults.resetConnection({ endpoint: ENDPOINT, fraction: 0.2, afterProcessing: true }));
  let expired = 0;
  if (kind === 'expiry' || kind === 'all') timer = setInterval(() => (expired += fake.faults.expireSessions()), 500);
  return () => {
    if (timer !== undefined) clearInterval(timer);
    for (const handle of handles) handle.remove();
    return handles.reduce((sum, handle) => sum + handle.triggered, 0) + expired;
  };
}

it('an Express app over a spool: 2.5 minutes of traffic with rotating faults and a 30 s outage bills every response exactly once, reports nothing to onError and keeps RSS flat', async () => {
  const spoolFile = path.join(tempDir(), 'soak.spool');
  const app = startChild('soak-app', [spoolFile, fake.apiKey, fake.url, fake.meterEventsUrl], [], { dir: __dirname });
  const port = Number((await app.waitForLine((line) => line.startsWith('listening '))).split(' ')[1]);
  const base = `http://127.0.0.1:${port}`;

  const billed: Record<string, number> = {};
  let failedRequests = 0;
  const started = Date.now();
  const worker = async (w: number): Promise<void> => {
    for (let i = w; Date.now() - started < TRAFFIC_MS; i += WORKERS) {
      const customer = CUSTOMERS[i % CUSTOMERS.length]!;
      try {
        const response = await fetch(`${base}/work`, { headers: { 'x-customer': customer } });
        await response.text();
        if (response.status === 200) billed[customer] = (billed[customer] ?? 0) + 1;
        else failedRequests += 1;
      } catch {
        failedRequests += 1;
      }
      await sleep(PACE_MS);
    }
  };
  const rss: number[] = [];
  const sampler = async (): Promise<void> => {
    await sleep(WARMUP_MS);
    while (Date.now() - started < TRAFFIC_MS) {
      rss.push(((await (await fetch(`${base}/_rss`)).json()) as { rss: number }).rss);
      await sleep(RSS_EVERY_MS);
    }
  };
  const timeline = async (): Promise<{ faulted: Record<string, number>; outageMs: number }> => {
    const faulted: Record<string, number> = {};
    const phase = async (name: string, kind: '500' | 'reset' | 'expiry' | 'all'): Promise<void> => {
      const stop = startPhase(kind);
      await sleep(15 * SECOND);
      faulted[name] = stop();
    };
    await sleep(WARMUP_MS);
    await phase('500s', '500');
    await phase('resets after processing', 'reset');
    await phase('session expiry', 'expiry');
    // The outage: 503 on everything, then connections reset, 30 s in all.
    const outageStart = Date.now();
    fake.faults.outage(true);
    await holdFor(15 * SECOND);
    fake.faults.outage({ mode: 'reset' });
    await holdFor(15 * SECOND);
    fake.faults.outage(false);
    const outageMs = Date.now() - outageStart;
    await phase('500s again', '500');
    await phase('resets again', 'reset');
    await phase('expiry again', 'expiry');
    await phase('all at once', 'all');
    return { faulted, outageMs };
  };

  const [{ faulted, outageMs }] = await Promise.all([timeline(), sampler(), ...Array.from({ length: WORKERS }, (_, w) => worker(w))]);
  const report = (await (await fetch(`${base}/_flush`, { method: 'POST' })).json()) as FlushReport;
  app.kill('SIGTERM');
  const exit = await app.done;

  const responses = Object.values(billed).reduce((sum, n) => sum + n, 0);
  expect(failedRequests).toBe(0);
  expect(responses).toBeGreaterThan(10_000);
  // Every phase bit: each fault fired, and the outage lasted its 30 s.
  expect(Object.entries(faulted).filter(([, n]) => n === 0)).toEqual([]);
  expect(outageMs).toBeGreaterThanOrEqual(30 * SECOND);
  expect(report.flushed).toEqual({ settled: true, pending: 0 });
  expect(report.errors).toEqual([]);
  expect(report.drops).toEqual([]);
  expect(report.stats).toMatchObject({ enqueued: responses, delivered: responses, failed: 0, dropped: { total: 0 } });
  expect(report.stats.sessionRefreshes).toBeGreaterThan(1);
  expect(totalsFor(fake, 'api_requests')).toEqual(billed);
  expect(trafficProblems(fake, { allRequests: true })).toEqual([]);
  expect(exit.stderr).toBe('');

  // Flat RSS: the median of the last third of the samples against the first third's.
  const third = Math.floor(rss.length / 3);
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const first = median(rss.slice(0, third));
  const last = median(rss.slice(-third));
  // One line for CI's log: what the soak went through, so a drift shows before it fails.
  console.log(
    `soak: ${responses} billed responses, faults ${JSON.stringify(faulted)}, outage ${outageMs} ms, ${report.stats.retries} retries, ` +
      `${report.stats.sessionRefreshes} session refreshes; RSS median ${(first / 2 ** 20).toFixed(1)} MiB (first third) → ${(last / 2 ** 20).toFixed(1)} MiB (last third), ${rss.length} samples`,
  );
  expect(rss.length).toBeGreaterThanOrEqual(20);
  expect({ growthMiB: Math.round((last - first) / 2 ** 20), within: last - first <= RSS_GROWTH_BOUND }).toMatchObject({ within: true });
});
