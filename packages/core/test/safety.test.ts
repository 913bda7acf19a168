// Secrets never leave in logs, errors or stats; the custom dispatcher is used and the global one untouched; idle reporters never hold a process.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { MockAgent, getGlobalDispatcher } from 'undici';
import { MeterReporter } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import { reporterFor } from './helpers';

it('keeps the API key and session tokens out of logs, errors and stats, through failures', async () => {
  const fake = await startFakeStripe();
  try {
    const { reporter, recorded } = reporterFor(fake, { retry: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 2 } });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    await reporter.flush();
    fake.faults.expireSessions();
    fake.faults.fail({ endpoint: 'meter_event_stream', status: 500, count: 5, message: `echo Bearer ${fake.apiKey}` });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
    await reporter.flush();
    await reporter.close();

    expect(recorded.errors.length).toBeGreaterThan(0);
    const tokens = fake.requests().length; // the log itself is redacted by the fake; tokens are read below
    expect(tokens).toBeGreaterThan(0);
    const everything = JSON.stringify({
      logs: recorded.logs,
      errors: recorded.errors.map(({ error }) => ({ message: error.message, cause: String((error.cause as Error).message), stack: error.stack })),
      stats: reporter.stats(),
    });
    expect(everything).not.toContain(fake.apiKey);
    expect(everything).not.toMatch(/ek_test_[A-Za-z0-9_-]{10,}/);
  } finally {
    await fake.close();
  }
});

it('sends through the dispatcher it was given and never touches the global one', async () => {
  const before = getGlobalDispatcher();
  const agent = new MockAgent();
  agent.disableNetConnect();
  const api = agent.get('https://api.stripe.com');
  const stream = agent.get('https://meter-events.stripe.com');
  api
    .intercept({ path: '/v2/billing/meter_event_session', method: 'POST' })
    .reply(200, { id: 'mes_1', object: 'v2.billing.meter_event_session', authentication_token: 'ek_test_mocktoken123456', created: new Date().toISOString(), expires_at: new Date(Date.now() + 900_000).toISOString(), livemode: false });
  let sent: unknown;
  let auth: unknown;
  stream
    .intercept({ path: '/v2/billing/meter_event_stream', method: 'POST' })
    .reply(200, (options) => {
      sent = JSON.parse(options.body as string);
      auth = (options.headers as Record<string, string>).authorization;
      return {};
    });
  const reporter = new MeterReporter({ apiKey: 'sk_test_mock', dispatcher: agent });
  reporter.report({ eventName: 'api_requests', customerId: 'cus_1', value: 3, identifier: 'm1' });
  await reporter.close();
  expect(auth).toBe('Bearer ek_test_mocktoken123456');
  expect(sent).toEqual({ events: [expect.objectContaining({ identifier: 'm1', payload: { stripe_customer_id: 'cus_1', value: '3' } })] });
  expect(getGlobalDispatcher()).toBe(before);
  agent.assertNoPendingInterceptors();
  await agent.close();
});

it('lets a process exit while events wait, instead of keeping it alive', () => {
  const script = `
    const { MeterReporter } = require(${JSON.stringify(path.resolve(__dirname, '../src/index.ts'))});
    const r = new MeterReporter({ apiKey: 'sk_test_exit', apiBaseUrl: 'http://127.0.0.1:9', meterEventsBaseUrl: 'http://127.0.0.1:9', flushIntervalMs: 10, logger: { warn() {}, error() {} } });
    r.report({ eventName: 'api_requests', customerId: 'cus_1' });
    process.on('exit', () => process.stdout.write('exited with ' + r.stats().pending + ' pending'));
  `;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 20_000, cwd: path.resolve(__dirname, '../../..') });
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  expect(result.stdout).toBe('exited with 1 pending');
});
