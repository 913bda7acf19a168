// Child: an Express app metered against the fake Stripe, with closeOnSignal(); reports what it billed as it exits.
import { closeOnSignal, meterUsage } from '@metered/express';
import express from 'express';

const { FAKE_API_KEY = '', FAKE_URL = '', FAKE_EVENTS_URL = '' } = process.env;
const WORK_MS = 40;

const metering = meterUsage({
  // Nothing is sent before the shutdown (no interval flush, no full batch): close() must deliver it all.
  reporter: { apiKey: FAKE_API_KEY, apiBaseUrl: FAKE_URL, meterEventsBaseUrl: FAKE_EVENTS_URL, flushIntervalMs: 600_000, maxBatchSize: 100 },
  customer: () => 'cus_load',
});
const app = express();
app.use(metering);
// Each request takes a while, so that SIGTERM finds some in flight.
app.get('/work', (_req, res) => {
  setTimeout(() => res.json({ ok: true }), WORK_MS);
});

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : 0}\n`);
});
const shutdown = closeOnSignal(server, metering, { drainTimeoutMs: 5000, closeTimeoutMs: 5000 });
process.once('SIGTERM', () => {
  // The shutdown the signal started, not a second one.
  void shutdown.shutdown().then((result) => {
    process.stdout.write(`shutdown ${JSON.stringify({ ...result, stats: metering.stats() })}\n`);
  });
});
process.on('exit', () => process.stdout.write('exit\n'));
