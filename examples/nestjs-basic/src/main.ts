// Starts the example: `npm run build && npm start`, then call it with one of the demo API keys.
import { createApp } from './app';
import { stripeTarget } from './stripe';

async function main(): Promise<void> {
  const target = await stripeTarget();
  // METERED_SPOOL_PATH: accepted events wait in that file until Stripe has them, so a crash or a
  // kill loses none and the next start resends them (needs the better-sqlite3 package).
  const spoolPath = process.env.METERED_SPOOL_PATH;
  const app = await createApp(spoolPath ? { ...target.reporter, spool: { path: spoolPath } } : target.reporter);
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  const url = await app.getUrl();
  const fake = target.fake;
  console.log(fake ? `Billing to a fake Stripe at ${fake.url} (set STRIPE_SECRET_KEY to use yours)` : 'Billing to Stripe with STRIPE_SECRET_KEY');
  console.log(`Try:\n  curl -H 'Authorization: Bearer demo-key-alice' ${url}/reports`);
  console.log(`  curl -H 'Authorization: Bearer demo-key-bob' -H 'content-type: application/json' -d '{"rows":250}' ${url}/reports/export`);
  if (fake) {
    // What the fake has received so far, every few seconds while there is anything new.
    let last = '';
    setInterval(() => {
      const totals = JSON.stringify(fake.totals());
      if (totals !== last && totals !== '{}') console.log(`Billed so far: ${totals}`);
      last = totals;
    }, 2000).unref();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
