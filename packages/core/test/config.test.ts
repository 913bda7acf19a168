// Bad configuration throws at construction, naming the option and what it accepts; nothing falls back silently.
import { MeterConfigError, MeterReporter } from '@metered/core';
import type { MeterReporterOptions } from '@metered/core';

const ok: MeterReporterOptions = { apiKey: 'sk_test_config' };

function configError(options: unknown): MeterConfigError {
  try {
    new MeterReporter(options as MeterReporterOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(MeterConfigError);
    expect((error as MeterConfigError).code).toBe('ERR_METER_INVALID_OPTION');
    return error as MeterConfigError;
  }
  throw new Error('the reporter accepted a bad option');
}

it.each([
  ['apiKey', {}],
  ['apiKey', { apiKey: 'pk_test_abc' }],
  ['apiKey', { apiKey: 'not-a-key' }],
  ['mode', { ...ok, mode: 'batch' }],
  ['apiBaseUrl', { ...ok, apiBaseUrl: 'api.stripe.com' }],
  ['apiBaseUrl', { ...ok, apiBaseUrl: 'https://api.stripe.com/v1' }],
  ['meterEventsBaseUrl', { ...ok, meterEventsBaseUrl: 'ftp://x' }],
  ['maxBatchSize', { ...ok, maxBatchSize: 101 }],
  ['maxBatchSize', { ...ok, maxBatchSize: 0 }],
  ['flushIntervalMs', { ...ok, flushIntervalMs: -1 }],
  ['maxQueueSize', { ...ok, maxQueueSize: 1.5 }],
  ['overflow', { ...ok, overflow: 'drop-random' }],
  ['maxRequestsPerSecond', { ...ok, maxRequestsPerSecond: 0 }],
  ['concurrency', { ...ok, concurrency: 0 }],
  ['requestTimeoutMs', { ...ok, requestTimeoutMs: '10s' }],
  ['retry.maxAttempts', { ...ok, retry: { maxAttempts: 0 } }],
  ['retry.maxDelayMs', { ...ok, retry: { initialDelayMs: 1000, maxDelayMs: 10 } }],
  ['payloadKeys.customer', { ...ok, payloadKeys: { customer: '' } }],
  ['payloadKeys', { ...ok, payloadKeys: { customer: 'x', value: 'x' } }],
  ['logger', { ...ok, logger: { info() {} } }],
  ['onError', { ...ok, onError: 'log' }],
  ['dispatcher', { ...ok, dispatcher: {} }],
  ['ledgerRetentionMs', { ...ok, ledgerRetentionMs: 0 }],
  ['ledgerRetentionMs', { ...ok, ledgerRetentionMs: 41 * 86_400_000 }],
  ['maxBatchsize', { ...ok, maxBatchsize: 10 }],
])('names %s when it is wrong', (option, options) => {
  const error = configError(options);
  expect(error.option).toBe(option);
  expect(error.message).toContain(`"${option}"`);
});

it('never puts the API key in a configuration error', () => {
  const error = configError({ apiKey: 'sk_live_supersecret123', mode: 'nope' });
  expect(error.message).not.toContain('supersecret');
  expect(JSON.stringify(error)).not.toContain('supersecret');
});

it('accepts restricted keys and live keys', async () => {
  for (const apiKey of ['rk_test_abc', 'sk_live_abc', 'rk_live_abc']) {
    const r = new MeterReporter({ apiKey });
    await r.close({ timeoutMs: 0 });
  }
});

it('warns once, with a code, when a test key runs with NODE_ENV=production', async () => {
  const previous = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  const warnings: object[] = [];
  const logger = { warn: (obj: object) => warnings.push(obj), error: () => undefined };
  try {
    const a = new MeterReporter({ apiKey: 'sk_test_prod', logger });
    const b = new MeterReporter({ apiKey: 'sk_test_prod', logger });
    await Promise.all([a.close({ timeoutMs: 0 }), b.close({ timeoutMs: 0 })]);
  } finally {
    process.env.NODE_ENV = previous;
  }
  expect(warnings).toEqual([{ code: 'WARN_METER_TEST_KEY_IN_PRODUCTION' }]);
});
