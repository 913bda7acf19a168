// Where meter events go: real Stripe when STRIPE_SECRET_KEY is set, otherwise a local fake started here.
import type { MeterReporterOptions } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { METERS } from './app';

/** The key the local fake accepts; fixed, so a run can be replayed by hand against the same fake. */
export const FAKE_STRIPE_API_KEY = 'sk_test_metered_example';

export interface StripeTarget {
  /** Options for the reporter that delivers the example's events. */
  readonly reporterOptions: MeterReporterOptions;
  /** The local fake, when no real key was given. */
  readonly fake: FakeStripe | undefined;
  /** What the events are sent to, for a log line (never the key). */
  readonly description: string;
  /** Stops the fake, if one was started. */
  close(): Promise<void>;
}

/** A fake Stripe on 127.0.0.1 with the example's meters. */
export async function startLocalStripe(): Promise<StripeTarget> {
  const fake = await startFakeStripe({ apiKey: FAKE_STRIPE_API_KEY, meters: [METERS.requests, METERS.tokens] });
  return {
    reporterOptions: { apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl, flushIntervalMs: 100 },
    fake,
    description: `the fake Stripe at ${fake.url} (stream host ${fake.meterEventsUrl})`,
    close: () => fake.close(),
  };
}

/** Real Stripe when `STRIPE_SECRET_KEY` is set, otherwise a local fake. */
export async function connectStripe(env: NodeJS.ProcessEnv = process.env): Promise<StripeTarget> {
  const apiKey = env.STRIPE_SECRET_KEY;
  if (apiKey === undefined || apiKey === '') return startLocalStripe();
  return {
    reporterOptions: { apiKey },
    fake: undefined,
    description: `Stripe (${apiKey.startsWith('sk_live_') || apiKey.startsWith('rk_live_') ? 'live mode' : 'test mode'})`,
    close: () => Promise.resolve(),
  };
}
