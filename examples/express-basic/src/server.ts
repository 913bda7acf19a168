// Runs the example API: `npm start -w @metered/example-express-basic` (PORT, HOST, STRIPE_SECRET_KEY, API_KEYS, METERED_SPOOL_PATH).
import { meterUsage } from '@metered/express';
import { createApp } from './app';
import { DEMO_API_KEYS, parseApiKeys } from './customers';
import { connectStripe } from './stripe-target';

const DEFAULT_PORT = 3000;
const DEFAULT_HOST = '127.0.0.1';
const SHUTDOWN_TIMEOUT_MS = 10_000;

async function main(): Promise<void> {
  const target = await connectStripe();
  const apiKeys = process.env.API_KEYS ? parseApiKeys(process.env.API_KEYS) : DEMO_API_KEYS;
  // METERED_SPOOL_PATH: accepted events wait in that file until Stripe has them, so a crash or a
  // kill loses none and the next start resends them (needs the better-sqlite3 package).
  const spoolPath = process.env.METERED_SPOOL_PATH;
  const reporter = spoolPath ? { ...target.reporterOptions, spool: { path: spoolPath } } : target.reporterOptions;
  const metering = meterUsage({ reporter, identifier: 'idempotency-key' });
  const app = createApp({ metering, apiKeys });

  const server = app.listen(Number(process.env.PORT ?? DEFAULT_PORT), process.env.HOST ?? DEFAULT_HOST, () => {
    const address = server.address();
    const where = typeof address === 'object' && address !== null ? `http://${address.address}:${address.port}` : String(address);
    console.log(`listening on ${where}; meter events go to ${target.description}`);
    console.log(`try: curl -H 'Authorization: Bearer ${Object.keys(apiKeys)[0] ?? '<key>'}' ${where}/v1/search?q=hello`);
  });

  // Stop taking requests, let in-flight ones finish, then deliver every pending event before exiting.
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: shutting down`);
    server.close(() => {
      void metering
        .close({ timeoutMs: SHUTDOWN_TIMEOUT_MS })
        .then(() => target.close())
        .then(() => {
          console.log('metering', metering.stats(), 'reporter', metering.reporter.stats());
        });
    });
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
