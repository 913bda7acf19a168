// Child: a runtime that freezes (exits) the moment an invocation's response and its waitUntil promises have settled.
import { createBilledFunction } from '../../src/serverless';
import type { DeliveryRecipe } from '../../src/serverless';

const recipe = process.argv[2] as DeliveryRecipe | 'none';
const invocations = Number(process.argv[3]);
const fn = createBilledFunction(
  { apiKey: process.env.METERED_API_KEY!, apiBaseUrl: process.env.METERED_API_URL, meterEventsBaseUrl: process.env.METERED_EVENTS_URL, flushIntervalMs: 60_000 },
  recipe === 'none' ? 'waitUntil' : recipe,
);

async function main(): Promise<void> {
  for (let i = 0; i < invocations; i += 1) {
    const pending: Promise<unknown>[] = [];
    const started = performance.now();
    // 'none' drops what waitUntil is handed: a function that neither flushes nor uses waitUntil.
    const response = await fn.handle({ customerId: `cus_${i % 3}`, units: i + 1 }, { waitUntil: (promise) => (recipe === 'none' ? undefined : pending.push(promise)) });
    const answeredMs = performance.now() - started;
    await Promise.all(pending);
    process.stdout.write(`${response.status} ${answeredMs.toFixed(3)} ${(performance.now() - started).toFixed(3)}\n`);
  }
  // Frozen: no close(), no beforeExit, no timers get to run.
  process.exit(0);
}

void main();
