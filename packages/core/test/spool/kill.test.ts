// SIGKILL at random moments: every event a child printed as durable ('event': after push; 'turn': after its turn's commit) is in the spool exactly once, and the ledger agrees with the rows left.
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

  it(`keeps the ledger equal to what was delivered plus the rows left, per cell, over ${ROUNDS} kills during settles`, async () => {
    const file = path.join(tempDir(), 'meter.spool');
    for (let round = 0; round < ROUNDS; round += 1) {
      const child = startChild('produce', [file, durability, `r${round}`, 'settle']);
      await child.waitForLine((line) => line === 'started');
      const target = 50 + Math.floor(Math.random() * 2000);
      await child.waitForLine((line) => line === `r${round}_${target}`);
      child.kill('SIGKILL');
      expect((await child.done).signal).toBe('SIGKILL');
    }

    const store = SpoolStore.open({ path: file });
    const left = store.recover(Date.now()).resend;
    const rows = store.ledger({ from: 0, to: Date.now() + 3_600_000 });
    store.close();
    // Per customer (the child's events fall in one or two hours): accepted = delivered + the rows left, counts and value sums.
    const sums = new Map<string, { accepted: bigint[]; deliveredAndLeft: bigint[] }>();
    const of = (customerId: string) => sums.get(customerId) ?? sums.set(customerId, { accepted: [0n, 0n], deliveredAndLeft: [0n, 0n] }).get(customerId)!;
    const add = (to: bigint[], count: number, value: string) => {
      to[0]! += BigInt(count);
      to[1]! += BigInt(value);
    };
    for (const row of rows) {
      add(of(row.customerId).accepted, row.accepted.count, row.accepted.value);
      add(of(row.customerId).deliveredAndLeft, row.delivered.count, row.delivered.value);
    }
    for (const e of left) add(of(e.customerId).deliveredAndLeft, 1, e.value);
    expect(sums.size).toBe(7);
    for (const [customerId, { accepted, deliveredAndLeft }] of sums) expect({ customerId, tally: deliveredAndLeft }).toEqual({ customerId, tally: accepted });
    expect(left.length).toBeGreaterThan(0);
    expect(rows.some((row) => row.delivered.count > 0)).toBe(true);
  });
});
