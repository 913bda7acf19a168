// A script that ends without close(): delivered on beforeExit, bounded when Stripe is away, never lost without a word.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { MeterReporter } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { totalsFor } from './helpers';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../../..');
const CORE = JSON.stringify(path.resolve(__dirname, '../src/index.ts'));

/** Runs `script` in a child Node (sources through tsx); resolves with its output and how long it lived. */
async function child(script: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  // Asynchronous on purpose: the fake lives in this process and must keep answering while the child runs.
  const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, timeout: 30_000, env: { ...process.env, ...env } });
  return { stdout, stderr, ms: Date.now() - started };
}

let fake: FakeStripe;

beforeEach(async () => {
  fake = await startFakeStripe();
});

afterEach(async () => {
  await fake.close();
});

it('delivers every event of a script that reports and ends without close()', async () => {
  const script = `
    const { MeterReporter } = require(${CORE});
    const r = new MeterReporter({ apiKey: process.env.KEY, apiBaseUrl: process.env.API, meterEventsBaseUrl: process.env.EVENTS, maxRequestsPerSecond: 1000, logger: { warn() {}, error() {} } });
    for (let i = 0; i < 150; i += 1) r.report({ eventName: 'api_requests', customerId: 'cus_exit', identifier: 'exit-' + i });
    process.on('exit', () => process.stdout.write(JSON.stringify(r.stats())));
  `;
  const { stdout, stderr } = await child(script, { KEY: fake.apiKey, API: fake.url, EVENTS: fake.meterEventsUrl });
  expect(stderr).toBe('');
  expect(JSON.parse(stdout)).toMatchObject({ enqueued: 150, delivered: 150, pending: 0, dropped: { total: 0 } });
  expect(totalsFor(fake, 'api_requests')).toEqual({ cus_exit: 150 });
}, 40_000);

it('exits within the close timeout when Stripe is unreachable, handing what is left to onDrop as shutdown', async () => {
  const script = `
    const { MeterReporter } = require(${CORE});
    const drops = [];
    const r = new MeterReporter({ apiKey: 'sk_test_exit', apiBaseUrl: 'http://127.0.0.1:9', meterEventsBaseUrl: 'http://127.0.0.1:9', flushIntervalMs: 10, logger: { warn() {}, error() {} }, onDrop: (events, reason) => drops.push(reason + ':' + events.length) });
    r.report({ eventName: 'api_requests', customerId: 'cus_1' });
    process.on('exit', () => process.stdout.write(r.stats().pending + ' pending, dropped ' + drops.join(',')));
  `;
  const { stdout, stderr, ms } = await child(script);
  expect(stderr).toBe('');
  expect(stdout).toBe('0 pending, dropped shutdown:1');
  // The exit flush is bounded like close()'s default (10 s); the child's own start-up is the rest.
  expect(ms).toBeLessThan(25_000);
}, 40_000);

it('lets an idle script exit at once, and close() removes the exit listener', async () => {
  const before = process.listenerCount('beforeExit');
  const reporter = new MeterReporter({ apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl });
  const second = new MeterReporter({ apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl });
  // One listener however many reporters are open.
  expect(process.listenerCount('beforeExit')).toBe(before + 1);
  await reporter.close();
  expect(process.listenerCount('beforeExit')).toBe(before + 1);
  await second.close();
  expect(process.listenerCount('beforeExit')).toBe(before);

  const script = `
    const { MeterReporter } = require(${CORE});
    const r = new MeterReporter({ apiKey: 'sk_test_idle', apiBaseUrl: 'http://127.0.0.1:9', meterEventsBaseUrl: 'http://127.0.0.1:9' });
    let turns = 0;
    process.on('beforeExit', () => { turns += 1; });
    process.on('exit', () => process.stdout.write('beforeExit ran ' + turns + ' time(s)'));
  `;
  const { stdout, stderr, ms } = await child(script);
  expect(stderr).toBe('');
  // Nothing pending: the reporter starts no work, so the loop does not re-arm.
  expect(stdout).toBe('beforeExit ran 1 time(s)');
  expect(ms).toBeLessThan(10_000);
}, 40_000);
