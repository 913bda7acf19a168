// The metered-worker bin as a real child process: configured by its environment, it delivers what an API server enqueued and exits 0 on SIGTERM.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startFakeStripe } from '@metered/testing';
import { RedisMeterReporter } from '@metered/redis';
import { describeRedis, onCleanup, REDIS_URL, uniquePrefix, until } from './helpers';

describeRedis('metered-worker', () => {
  it('reads its options from the environment, delivers what was enqueued, and exits 0 on SIGTERM', async () => {
    const fake = await startFakeStripe({ meters: ['api_requests'] });
    onCleanup(() => fake.close());
    const prefix = uniquePrefix();
    const api = new RedisMeterReporter({ apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl, redis: REDIS_URL, keyPrefix: prefix, deliver: false });
    onCleanup(() => api.close({ timeoutMs: 0 }).then(() => undefined));
    for (let i = 0; i < 250; i += 1) api.report({ eventName: 'api_requests', customerId: 'cus_1', identifier: `bin_${i}` });

    const env = { ...process.env, STRIPE_SECRET_KEY: fake.apiKey, REDIS_URL, METERED_KEY_PREFIX: prefix, METERED_API_BASE_URL: fake.url, METERED_METER_EVENTS_BASE_URL: fake.meterEventsUrl, METERED_MAX_REQUESTS_PER_SECOND: '1000' };
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'src', 'bin.ts')], { cwd: path.resolve(__dirname, '../../..'), env, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    onCleanup(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));

    await until(() => new Set(fake.events().map((e) => e.identifier)).size === 250, 'the worker delivering all 250', 30_000);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const codes = out
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => (JSON.parse(line) as { code?: string }).code);
    expect(codes).toEqual(expect.arrayContaining(['METER_WORKER_STARTED', 'METER_WORKER_STOPPING', 'METER_WORKER_STOPPED']));
    expect(out).not.toContain(fake.apiKey);
  });
});
