// A process that closes a reporter while Redis is unreachable, then must exit on its own: nothing of the package may hold it open.
import { RedisMeterReporter } from '../../src/index';

const reporter = new RedisMeterReporter({
  apiKey: 'sk_test_close_in_outage',
  apiBaseUrl: 'http://127.0.0.1:9',
  meterEventsBaseUrl: 'http://127.0.0.1:9',
  redis: process.env.REDIS_URL,
  queue: { retryIntervalMs: 50 },
  logger: { warn: () => undefined, error: () => undefined },
  onError: (error) => {
    if (error.code !== 'ERR_METER_REDIS_UNAVAILABLE' || outage) return;
    outage = true;
    // Close while ioredis is between reconnect attempts, its socket already gone.
    setTimeout(() => {
      void reporter.close({ timeoutMs: 0 }).then(() => console.log('closed'));
    }, 300);
  },
});
let outage = false;
reporter.report({ eventName: 'api_requests', customerId: 'cus_1' });
