// `metered reconcile` as a child process: the table, exit 0 when clean, 1 on a difference, 2 on misuse or a held spool.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SpoolStore } from '../../src/store/spool-store';
import type { QueuedEvent } from '../../src/store/queue';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { closeReporters, reporterFor } from '../helpers';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../../../..');
const BIN = path.join(ROOT, 'packages/core/src/verdict/bin.ts');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');

async function metered(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(TSX, [BIN, ...args], { env: { ...process.env, ...env }, cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let fake: FakeStripe;
let dir: string;
const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;

beforeAll(async () => {
  fake = await startFakeStripe();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-cli-'));
  const { reporter } = reporterFor(fake);
  for (let i = 0; i < 4; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_cli', value: 3 });
  await reporter.flush();
  await closeReporters();
});

afterAll(async () => {
  await fake.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A spool whose ledger says `count` events of value 3 were delivered for cus_cli this hour. */
function spoolWith(name: string, count: number): string {
  const file = path.join(dir, name);
  const store = SpoolStore.open({ path: file });
  const events: QueuedEvent[] = Array.from({ length: count }, (_, i) => ({ eventName: 'api_requests', customerId: 'cus_cli', value: '3', timestamp: hour + 1000 + i, identifier: `${name}-${i}`, seq: i + 1 }));
  for (const event of events) store.push(event);
  store.settle(store.take(count), 'delivered');
  store.close();
  return file;
}

const window = ['--from', new Date(hour).toISOString(), '--to', new Date(hour + 3_600_000).toISOString()];

it('prints a clean table and exits 0 when the spool matches Stripe', async () => {
  const file = spoolWith('clean.sqlite', 4);
  const result = await metered(['reconcile', ...window, '--spool', file, '--api-base-url', fake.url], { STRIPE_SECRET_KEY: fake.apiKey });
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/cus_cli\s+api_requests\s+12\s+12\s+0/);
  expect(result.stdout).toContain('clean');
  expect(result.stdout).not.toContain(fake.apiKey);
}, 30_000);

it('exits 1 and shows the difference when the spool says more was delivered than Stripe holds', async () => {
  const file = spoolWith('off.sqlite', 6);
  const result = await metered(['reconcile', ...window, '--spool', file, '--api-base-url', fake.url], { STRIPE_SECRET_KEY: fake.apiKey });
  expect(result.code).toBe(1);
  expect(result.stdout).toMatch(/cus_cli\s+api_requests\s+18\s+12\s+-6/);
}, 30_000);

it("lists Stripe's totals for --customer without a spool", async () => {
  const result = await metered(['reconcile', ...window, '--customer', 'cus_cli', '--api-base-url', fake.url], { STRIPE_SECRET_KEY: fake.apiKey });
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/cus_cli\s+api_requests\s+12/);
}, 30_000);

it('exits 2 with the lock explained while a reporter holds the spool, and on misuse', async () => {
  const file = spoolWith('held.sqlite', 1);
  const holder = SpoolStore.open({ path: file });
  try {
    const held = await metered(['reconcile', ...window, '--spool', file, '--api-base-url', fake.url], { STRIPE_SECRET_KEY: fake.apiKey });
    expect(held.code).toBe(2);
    expect(held.stderr).toContain('ERR_METER_SPOOL_LOCKED');
    expect(held.stderr).toContain('running reporter');
  } finally {
    holder.close();
  }
  const noKey = await metered(['reconcile', ...window, '--customer', 'cus_cli'], { STRIPE_SECRET_KEY: '' });
  expect(noKey.code).toBe(2);
  expect(noKey.stderr).toContain('STRIPE_SECRET_KEY');
  const noCommand = await metered([], { STRIPE_SECRET_KEY: fake.apiKey });
  expect(noCommand.code).toBe(2);
  expect(noCommand.stderr).toContain('Usage: metered reconcile');
}, 60_000);
