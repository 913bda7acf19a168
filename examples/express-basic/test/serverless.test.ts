// The serverless recipe under a runtime that freezes right after each response: every event reaches the fake with waitUntil or flush.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../../..');
const CHILD = path.join(__dirname, 'children', 'frozen-runtime.ts');
const INVOCATIONS = 12;

let fake: FakeStripe;

beforeAll(async () => {
  fake = await startFakeStripe({ meters: ['api_requests'] });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
});

async function frozenRuntime(recipe: string): Promise<string[]> {
  // Asynchronous: the fake lives in this process and must answer while the child runs.
  const { stdout } = await run(process.execPath, ['--import', 'tsx', CHILD, recipe, String(INVOCATIONS)], {
    cwd: ROOT,
    timeout: 30_000,
    env: { ...process.env, METERED_API_KEY: fake.apiKey, METERED_API_URL: fake.url, METERED_EVENTS_URL: fake.meterEventsUrl },
  });
  return stdout.trim().split('\n');
}

/** What the invocations billed: 1 + 2 + … per customer cus_0, cus_1, cus_2. */
function expectedTotals(): Record<string, { api_requests: number }> {
  const totals: Record<string, { api_requests: number }> = {};
  for (let i = 0; i < INVOCATIONS; i += 1) {
    const customer = `cus_${i % 3}`;
    totals[customer] = { api_requests: (totals[customer]?.api_requests ?? 0) + i + 1 };
  }
  return totals;
}

describe('a serverless function frozen right after each response', () => {
  it.each(['waitUntil', 'flush'])('loses no event with the %s recipe', async (recipe) => {
    const lines = await frozenRuntime(recipe);
    expect(lines).toHaveLength(INVOCATIONS);
    expect(fake.totals()).toEqual(expectedTotals());
    expect(fake.events()).toHaveLength(INVOCATIONS);
  });

  it('loses the events of a function that neither flushes nor hands waitUntil its promise (what the recipe prevents)', async () => {
    await frozenRuntime('none');
    expect(fake.events().length).toBeLessThan(INVOCATIONS);
  });
});
