// THE kill test: a reporter with a spool SIGKILLed at random moments while it reports and delivers; every event past its durability point reaches the fake exactly once.
import path from 'node:path';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { SpoolStore } from '../../src/store/spool-store';
import type { SpoolDurability } from '../../src/store/types';
import { lines, startChild, tempDir } from '../spool/helpers';

jest.setTimeout(120_000);
/** Kills per durability mode; 2 × 20 = 40 rounds in all. */
const ROUNDS = 20;
const PER_TURN = 25;

let fake: FakeStripe;
beforeAll(async () => {
  fake = await startFakeStripe();
});
afterAll(async () => {
  await fake.close();
});

function run(file: string, durability: SpoolDurability, prefix: string, action: 'produce' | 'drain') {
  const env = { METERED_API_KEY: fake.apiKey, METERED_API_URL: fake.url, METERED_EVENTS_URL: fake.meterEventsUrl };
  return startChild('report', [file, durability, prefix, action], [], { dir: __dirname, env });
}

describe.each<SpoolDurability>(['event', 'turn'])("a reporter with spool durability '%s' under SIGKILL", (durability) => {
  it(`loses no event past its durability point and counts none twice over ${ROUNDS} kills and restarts`, async () => {
    const file = path.join(tempDir(), 'meter.spool');
    const printed = new Set<string>();
    const lastPrinted = new Map<string, number>();
    for (let round = 0; round < ROUNDS; round += 1) {
      const prefix = `${durability}${round}`;
      const child = run(file, durability, prefix, 'produce');
      // Killed at a random point of its own output (not of a clock): after 1 to ~2,000 durable events,
      // while the previous rounds' backlog and this round's batches are being delivered.
      const target = 1 + Math.floor(Math.random() * 2000);
      await child.waitForLine((line) => line === `${prefix}_${target}`);
      child.kill('SIGKILL');
      const { signal, stdout, stderr } = await child.done;
      expect(signal).toBe('SIGKILL');
      expect(stdout).not.toMatch(/onError|onDrop/);
      expect(stderr).toBe('');
      const ids = lines(stdout).filter((line) => line.startsWith(`${prefix}_`));
      for (const id of ids) printed.add(id);
      lastPrinted.set(prefix, Math.max(...ids.map((id) => Number(id.slice(prefix.length + 1)))));
    }

    const drain = run(file, durability, 'drain', 'drain');
    const { code, stdout, stderr } = await drain.done;
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).not.toMatch(/onError|onDrop/);
    const summary = JSON.parse(lines(stdout).find((line) => line.startsWith('{'))!) as { settled: boolean; result: { kept: number; dropped: number } };
    expect(summary.settled).toBe(true);
    expect(summary.result).toMatchObject({ kept: 0, dropped: 0 });

    const counts = new Map<string, number>();
    for (const event of fake.events()) if (event.identifier.startsWith(durability)) counts.set(event.identifier, (counts.get(event.identifier) ?? 0) + 1);
    // Zero lost: every identifier printed as durable is at the fake, and exactly once.
    expect([...printed].filter((id) => counts.get(id) !== 1)).toEqual([]);
    // Zero invented: whatever the fake has was reported by a child; at most the turn cut short by the kill was never printed.
    const unknown = [...counts.keys()].filter((id) => {
      if (printed.has(id)) return false;
      const [prefix, n] = id.split('_') as [string, string];
      return !(lastPrinted.has(prefix) && Number(n) <= lastPrinted.get(prefix)! + PER_TURN);
    });
    expect(unknown).toEqual([]);
    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    expect(printed.size).toBeGreaterThan(ROUNDS);

    // The spool is empty after the drain: nothing left to resend.
    const store = SpoolStore.open({ path: file });
    expect(store.recover(Date.now()).resend).toHaveLength(0);
    store.close();
  });
});
