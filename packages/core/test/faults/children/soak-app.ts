// Child of the soak: an Express app billing every request through meterUsage, its reporter over a spool, with control routes for the parent.
import type { AddressInfo } from 'node:net';
import express from 'express';
import { MeterReporter } from '@metered/core';
import { meterUsage } from '@metered/express';

const [spoolFile, apiKey, apiBaseUrl, meterEventsBaseUrl] = process.argv.slice(2) as [string, string, string, string];
const errors: string[] = [];
const drops: string[] = [];
const reporter = new MeterReporter({
  apiKey,
  apiBaseUrl,
  meterEventsBaseUrl,
  spool: { path: spoolFile },
  logger: { warn() {}, error() {} },
  onError: (error, events) => errors.push(`${error.code} (${events.length} events)`),
  onDrop: (events, reason) => drops.push(`${reason} (${events.length} events)`),
});

const app = express();
// The control routes come before the middleware, so they are never billed.
app.get('/_rss', (_req, res) => {
  res.json({ rss: process.memoryUsage().rss });
});
app.post('/_flush', async (_req, res) => {
  const flushed = await reporter.flush({ timeoutMs: 90_000 });
  res.json({ flushed, stats: reporter.stats(), errors, drops });
});
app.use(meterUsage({ reporter, eventName: 'api_requests', customer: (req) => req.get('x-customer') }));
app.get('/work', (_req, res) => {
  res.send('done');
});

const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close();
  void reporter.close().then(() => process.exit(0));
});
