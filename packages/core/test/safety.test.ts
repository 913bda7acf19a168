// Secrets never leave in logs, errors, stats or util.inspect; the custom dispatcher is used and the global one untouched.
import { MockAgent, getGlobalDispatcher } from 'undici';
import { MeterReporter } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import { closeReporters, reporterFor } from './helpers';

it('keeps the API key and session tokens out of logs, errors and stats, through failures', async () => {
  const fake = await startFakeStripe();
  try {
    // No time budget: the 500s become dead letters at once, and their messages are what is checked.
    const { reporter, recorded } = reporterFor(fake, { retry: { initialDelayMs: 1, maxDelayMs: 2, maxElapsedMs: 0 } });
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
    await closeReporters();
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
