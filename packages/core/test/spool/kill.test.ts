// SIGKILL at random moments: every event a child printed as durable ('event': after push; 'turn': after its turn's commit) is in the spool exactly once.
import path from 'node:path';
import { SpoolStore } from '../../src/store/spool-store';
import type { SpoolDurability } from '../../src/store/types';
import { lines, startChild, tempDir } from './helpers';

jest.setTimeout(60_000);
const ROUNDS = 6;

describe.each<SpoolDurability>(['event', 'turn'])("durability '%s' under SIGKILL", (durability) => {
  it(`loses no event past its durability point and duplicates none over ${ROUNDS} kills`, async () => {
    const file = path.join(tempDir(), 'meter.spool');
    const printed: string[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const child = startChild('produce', [file, durability, `r${round}`]);
      await child.waitForLine((line) => line === 'started');
      // Wait on the child's own output, not on a clock: kill after a random number of durable events.
      const target = 50 + Math.floor(Math.random() * 2000);
      await child.waitForLine((line) => line === `r${round}_${target}`);
      child.kill('SIGKILL');
      const run = await child.done;
      expect(run.signal).toBe('SIGKILL');
      printed.push(...lines(run.stdout).filter((line) => line.startsWith(`r${round}_`)));
    }

    const store = SpoolStore.open({ path: file });
    const recovered = store.recover(Date.now()).resend.map((e) => e.identifier);
    store.close();
    const counts = new Map<string, number>();
    for (const id of recovered) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect([...counts.values()].filter((n) => n > 1)).toEqual([]);
    expect(printed.filter((id) => !counts.has(id))).toEqual([]);
    expect(printed.length).toBeGreaterThan(ROUNDS * 50);
  });
});
