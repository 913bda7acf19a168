// The verdict demo: a customer id Stripe does not know is caught through the signed meter error webhook within seconds, then reconcile prints a clean table.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { MeterRejectedEventError, MeterReporter, formatReconcileTable, reconcile } from '@metered/core';
import type { MeterError, ReconcileResult } from '@metered/core';
import { meterErrorWebhook, meterUsage } from '@metered/express';
import { startFakeStripe } from '@metered/testing';
import express from 'express';
import { METERS, createApp } from './app';
import { FAKE_STRIPE_API_KEY } from './stripe-target';

/** How long the demo waits for Stripe's verdict before calling it a failure. */
const VERDICT_TIMEOUT_MS = 10_000;
/** The fake's batching window for error reports (Stripe's own spans some seconds). */
const REPORT_WINDOW_MS = 500;
const GOOD_KEY = 'demo_key_acme';
const MISCONFIGURED_KEY = 'demo_key_typo';

export interface VerdictDemoResult {
  readonly ok: boolean;
  /** The rejection reported through the webhook, if it came. */
  readonly caught: MeterRejectedEventError | undefined;
  /** Milliseconds from the request to `onError`. */
  readonly caughtAfterMs: number | undefined;
  /** Reconciliation of the correctly configured customer's usage. */
  readonly reconcile: ReconcileResult;
}

/** Runs the verdict demo against a local fake Stripe; `log` receives each line of output. */
export async function runVerdictDemo(log: (line: string) => void = console.log): Promise<VerdictDemoResult> {
  // cus_demo_acme exists; the misconfigured key maps to cus_demo_acmee, which Stripe has never heard of.
  const fake = await startFakeStripe({ apiKey: FAKE_STRIPE_API_KEY, meters: [METERS.requests, METERS.tokens], customers: ['cus_demo_acme'], webhook: { batchWindowMs: REPORT_WINDOW_MS } });
  let server: Server | undefined;
  let reporter: MeterReporter | undefined;
  try {
    let caught: MeterRejectedEventError | undefined;
    let resolveCaught!: () => void;
    const caughtPromise = new Promise<void>((resolve) => (resolveCaught = resolve));
    reporter = new MeterReporter({
      apiKey: fake.apiKey,
      apiBaseUrl: fake.url,
      meterEventsBaseUrl: fake.meterEventsUrl,
      flushIntervalMs: 100,
      onError: (error: MeterError) => {
        if (error instanceof MeterRejectedEventError && caught === undefined) {
          caught = error;
          resolveCaught();
        }
      },
    });
    const metering = meterUsage({ reporter, verifyMeters: 'fail' });
    const app = express();
    app.use(meterErrorWebhook({ reporter, secrets: fake.webhooks.secrets }));
    app.use(createApp({ metering, apiKeys: { [GOOD_KEY]: 'cus_demo_acme', [MISCONFIGURED_KEY]: 'cus_demo_acmee' } }));
    await metering.ready();
    log('Meter check: every event name has an active meter reading the reporter\'s payload keys.');
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    fake.webhooks.setUrl(`${base}/stripe/meter-errors`);

    const started = Date.now();
    for (const key of [GOOD_KEY, GOOD_KEY, GOOD_KEY, MISCONFIGURED_KEY]) {
      const res = await fetch(`${base}/v1/search?q=meter`, { headers: { authorization: `Bearer ${key}` } });
      await res.arrayBuffer();
    }
    log('Sent 3 requests as cus_demo_acme and 1 as cus_demo_acmee (a typo in the API key table); Stripe answered {} to all.');
    await reporter.flush();
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, VERDICT_TIMEOUT_MS).unref());
    await Promise.race([caughtPromise, timeout]);
    const caughtAfterMs = caught === undefined ? undefined : Date.now() - started;
    if (caught !== undefined) {
      log(`Caught through the signed webhook after ${caughtAfterMs} ms: ${caught.stripeCode} for ${caught.customerId} (${caught.eventName}, identifier ${caught.identifier}).`);
    } else {
      log(`FAILED: no meter error event reached onError within ${VERDICT_TIMEOUT_MS} ms.`);
    }

    const now = Date.now();
    // The typo customer's event is delivered as far as the reporter knows but not billed: reconcile the real customer.
    const result = await reconcile({ apiKey: fake.apiKey, apiBaseUrl: fake.url, from: now, to: now + 1, ledger: (query) => reporter!.ledger(query), customers: ['cus_demo_acme'] });
    log(formatReconcileTable(result));
    const ok = caught !== undefined && caught.customerId === 'cus_demo_acmee' && result.clean && result.rows.length > 0;
    log(ok ? 'OK: the misconfigured customer was caught within seconds and the ledger reconciles with Stripe.' : 'FAILED: see above.');
    return { ok, caught, caughtAfterMs, reconcile: result };
  } finally {
    await reporter?.close();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
    await fake.close();
  }
}

if (require.main === module) {
  runVerdictDemo().then(
    (result) => {
      process.exitCode = result.ok ? 0 : 1;
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
