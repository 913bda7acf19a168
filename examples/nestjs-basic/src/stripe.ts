// Where events go: real Stripe when STRIPE_SECRET_KEY is set, otherwise a local fake Stripe.
import type { MeterReporterOptions } from '@metered/core';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';

/** The meters the example's routes bill; with real Stripe, create them in the dashboard. */
export const METERS = ['api_requests', 'export_rows', 'ai_tokens'];

export interface StripeTarget {
  reporter: MeterReporterOptions;
  /** The fake, when no key was given (its `totals()` show what was billed). */
  fake: FakeStripe | undefined;
}

export async function stripeTarget(env: NodeJS.ProcessEnv = process.env): Promise<StripeTarget> {
  const apiKey = env.STRIPE_SECRET_KEY;
  if (apiKey !== undefined && apiKey !== '') return { reporter: { apiKey }, fake: undefined };
  const fake = await startFakeStripe({ meters: METERS });
  return {
    reporter: { apiKey: fake.apiKey, apiBaseUrl: fake.url, meterEventsBaseUrl: fake.meterEventsUrl },
    fake,
  };
}
