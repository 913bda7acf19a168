// A replica for the SIGKILL test: reports rounds of events through Redis, says when each round is in Redis, and delivers until stopped.
import { RedisMeterReporter } from '../../src/index';

const [prefix, name, roundsArg, stopAfterArg] = process.argv.slice(2);
const rounds = Number(roundsArg);
const stopAfter = Number(stopAfterArg ?? rounds);
const PER_ROUND = 200;

const reporter = new RedisMeterReporter({
  apiKey: process.env.FAKE_API_KEY!,
  apiBaseUrl: process.env.FAKE_URL,
  meterEventsBaseUrl: process.env.FAKE_METER_EVENTS_URL,
  redis: process.env.REDIS_URL,
  keyPrefix: prefix,
  maxRequestsPerSecond: 10_000,
  maxBatchSize: 10,
  concurrency: 2,
  retry: { initialDelayMs: 5, maxDelayMs: 50, maxAttempts: 50 },
  queue: { claimIdleMs: 1000, pollIntervalMs: 10 },
  logger: { warn: () => undefined, error: () => undefined },
});
console.log(`consumer ${reporter.queue.consumer}`);

async function main(): Promise<void> {
  for (let round = 0; round < Math.min(rounds, stopAfter); round += 1) {
    for (let i = 0; i < PER_ROUND; i += 1) reporter.report({ eventName: 'api_requests', customerId: `cus_${i % 4}`, value: 3, identifier: `${name}_${round}_${i}` });
    while (reporter.queue.localCount > 0) await new Promise((resolve) => setTimeout(resolve, 2));
    console.log(`confirmed ${round}`);
  }
  console.log('reported');
}

process.once('SIGTERM', () => {
  void reporter.close({ timeoutMs: 5000 }).then(() => process.exit(0));
});
void main();
