// What a spool hands the next process: same identifiers, expired and uncertain events set apart by `now`, the first attempt kept.
import path from 'node:path';
import { SpoolStore } from '../../src/store/spool-store';
import { MAX_EVENT_AGE_MS } from '../../src/intake/validate';
import { NOW, event, tempDir } from './helpers';

const HOUR = 3_600_000;

function reopen(file: string, resendWithinMs?: number): SpoolStore {
  return SpoolStore.open({ path: file, ...(resendWithinMs === undefined ? {} : { resendWithinMs }) });
}

describe('recover()', () => {
  let file: string;
  beforeEach(() => {
    file = path.join(tempDir(), 'meter.spool');
  });

  it('queues what a previous process left at the head, oldest first, with the same identifiers', () => {
    const first = SpoolStore.open({ path: file });
    for (let i = 0; i < 5; i += 1) first.push(event(i));
    first.close();

    const second = reopen(file);
    second.push(event(10, { identifier: 'fresh' }));
    const { resend, expired, uncertain } = second.recover(NOW);
    expect(resend.map((e) => e.identifier)).toEqual(['evt_0', 'evt_1', 'evt_2', 'evt_3', 'evt_4']);
    expect(resend.every((e) => e.seq === 0)).toBe(true);
    expect(expired).toEqual([]);
    expect(uncertain).toEqual([]);
    expect(second.take(10).map((e) => e.identifier)).toEqual(['evt_0', 'evt_1', 'evt_2', 'evt_3', 'evt_4', 'fresh']);
    // Recovered once: a second call finds nothing more.
    expect(second.recover(NOW).resend).toEqual([]);
    second.close();
  });

  it('sets apart events older than 35 days as expired, to the millisecond', () => {
    const first = SpoolStore.open({ path: file });
    first.push(event(0, { identifier: 'edge', timestamp: NOW - MAX_EVENT_AGE_MS }));
    first.push(event(1, { identifier: 'old', timestamp: NOW - MAX_EVENT_AGE_MS - 1 }));
    first.close();
    const second = reopen(file);
    const { resend, expired } = second.recover(NOW);
    expect(resend.map((e) => e.identifier)).toEqual(['edge']);
    expect(expired.map((e) => e.identifier)).toEqual(['old']);
    expect(second.size).toBe(1);
    second.close();
  });

  it('never resends an event first attempted longer ago than resendWithinMs: it is uncertain, with its first attempt time', () => {
    const first = SpoolStore.open({ path: file });
    const [a, b, c] = [event(0), event(1), event(2)];
    for (const e of [a, b, c]) first.push(e);
    first.markAttempted([a, b], NOW - 23 * HOUR - 1);
    first.markAttempted([c], NOW - 23 * HOUR);
    first.close();

    const second = reopen(file);
    const { resend, uncertain } = second.recover(NOW);
    expect(uncertain).toEqual([
      { event: { ...a, seq: 0 }, firstAttemptAt: NOW - 23 * HOUR - 1 },
      { event: { ...b, seq: 0 }, firstAttemptAt: NOW - 23 * HOUR - 1 },
    ]);
    expect(resend.map((e) => e.identifier)).toEqual(['evt_2']);
    second.close();
  });

  it('keeps the first attempt time through retries and restarts, so a resend cannot reset the 24 h clock', () => {
    const first = SpoolStore.open({ path: file });
    const e = event(0);
    first.push(e);
    first.markAttempted([e], NOW - 20 * HOUR);
    first.markAttempted([e], NOW - 1 * HOUR);
    first.close();

    // A restart resends it (within the window) and attempts it again, later.
    const second = reopen(file);
    const recovered = second.recover(NOW);
    const [again] = recovered.resend;
    // Handed to delivery with the rows to resend, so that their retries stop within Stripe's window too.
    expect(recovered.firstAttempts).toEqual(new Map([[again, NOW - 20 * HOUR]]));
    second.markAttempted([again!], NOW);
    second.close();

    const third = reopen(file);
    expect(third.recover(NOW + 4 * HOUR).uncertain).toEqual([{ event: { ...e, seq: 0 }, firstAttemptAt: NOW - 20 * HOUR }]);
    third.close();
  });

  it('classifies an attempted event as uncertain before expired: it may be billed even though it can no longer be sent', () => {
    const first = SpoolStore.open({ path: file });
    const e = event(0, { timestamp: NOW - MAX_EVENT_AGE_MS - HOUR });
    first.push(e);
    first.markAttempted([e], NOW - MAX_EVENT_AGE_MS);
    first.close();
    const second = reopen(file);
    const { expired, uncertain } = second.recover(NOW);
    expect(expired).toEqual([]);
    expect(uncertain.map((u) => u.event.identifier)).toEqual(['evt_0']);
    second.close();
  });

  it('honours a shorter resendWithinMs', () => {
    const first = SpoolStore.open({ path: file });
    const e = event(0);
    first.push(e);
    first.markAttempted([e], NOW - 2 * HOUR);
    first.close();
    const second = reopen(file, HOUR);
    expect(second.recover(NOW).uncertain).toHaveLength(1);
    second.close();
  });

  it('removes expired and uncertain rows once settled, counting them in the ledger', () => {
    const first = SpoolStore.open({ path: file });
    const old = event(0, { timestamp: NOW - MAX_EVENT_AGE_MS - 5, value: '7' });
    const tried = event(1, { value: '11' });
    first.push(old);
    first.push(tried);
    first.markAttempted([tried], NOW - 30 * HOUR);
    first.close();

    const second = reopen(file);
    const { expired, uncertain } = second.recover(NOW);
    second.settle(expired, 'dropped');
    second.settle(uncertain.map((u) => u.event), 'uncertain');
    const rows = second.ledger({ from: NOW - MAX_EVENT_AGE_MS - HOUR, to: NOW + HOUR });
    expect(rows.map((r) => [r.dropped, r.uncertain])).toEqual([
      [{ count: 1, value: '7' }, { count: 0, value: '0' }],
      [{ count: 0, value: '0' }, { count: 1, value: '11' }],
    ]);
    second.close();
    const third = reopen(file);
    expect(third.recover(NOW)).toEqual({ resend: [], expired: [], uncertain: [], firstAttempts: new Map() });
    third.close();
  });
});
