// Settled rows leave the file in batched deletes, and freed pages go back to the disk: 100k events leave a small spool.
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { SpoolStore } from '../../src/store/spool-store';
import { event, spoolBytes, tempDir } from './helpers';

jest.setTimeout(60_000);
const TOTAL = 100_000;
const SMALL = 2 * 1024 * 1024;

describe('spool size', () => {
  it('stays small while 100k events flow through in batches (push a turn, deliver it)', async () => {
    const store = SpoolStore.open({ path: path.join(tempDir(), 'meter.spool') });
    let largest = 0;
    for (let i = 0; i < TOTAL; i += 1000) {
      for (let j = i; j < i + 1000; j += 1) store.push(event(j));
      await nextTurn();
      while (store.size > 0) {
        const batch = store.take(100);
        store.markAttempted(batch, Date.now());
        store.settle(batch, 'delivered');
      }
      await nextTurn();
      largest = Math.max(largest, spoolBytes(store.path));
    }
    expect(largest).toBeLessThan(SMALL);
    expect(store.ledger({ from: 0, to: Date.now() * 2 }).reduce((n, row) => n + row.delivered.count, 0)).toBe(TOTAL);
    store.close();
  });

  it('gives a drained backlog of 100k events back to the disk', async () => {
    const store = SpoolStore.open({ path: path.join(tempDir(), 'meter.spool') });
    for (let i = 0; i < TOTAL; i += 1) store.push(event(i));
    await nextTurn();
    const full = spoolBytes(store.path);
    expect(full).toBeGreaterThan(5 * 1024 * 1024);
    while (store.size > 0) store.settle(store.take(100), 'delivered');
    store.commit();
    expect(spoolBytes(store.path)).toBeLessThan(256 * 1024);
    store.close();
  });
});
