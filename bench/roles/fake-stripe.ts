// Child process: @metered/testing's fake Stripe, so that its work never shares an event loop with what is measured.
import { startFakeStripe } from '@metered/testing';
import type { FakeStripeOptions } from '@metered/testing';
import { childConfig, serveParent } from '../lib/proc';

export interface FakeReady {
  url: string;
  meterEventsUrl: string;
  apiKey: string;
}

export interface FakeCounts {
  requests: number;
  acceptedEvents: number;
  rejectedEvents: number;
  /** 429 answers among the logged requests (needs `maxLoggedRequests` above the run's request count). */
  rateLimited: number;
  /** CPU time of this process so far, milliseconds. */
  cpuMs: number;
}

async function main(): Promise<void> {
  const options = childConfig<FakeStripeOptions>();
  // Bodies are never needed here and logging them costs the fake a copy of every request.
  const fake = await startFakeStripe({ logBodies: false, maxLoggedRequests: 0, ...options });
  const ready: FakeReady = { url: fake.url, meterEventsUrl: fake.meterEventsUrl, apiKey: fake.apiKey };
  serveParent(ready, {
    counts: (): FakeCounts => {
      const stats = fake.stats();
      const cpu = process.cpuUsage();
      const rateLimited = options.maxLoggedRequests ? fake.requests().filter((entry) => entry.status === 429).length : 0;
      return { ...stats, rateLimited, cpuMs: (cpu.user + cpu.system) / 1000 };
    },
    outage: (on: boolean) => fake.faults.outage(on),
    reset: () => fake.reset(),
    close: () => fake.close(),
  });
}

void main();
