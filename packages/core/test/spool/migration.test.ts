// Spools written by older versions open as schema 3 with the same events (ids, fields, attempt marks) and the same ledger figures.
//
// fixtures/schema-1.spool and schema-2.spool were written by those versions' own SpoolStore (the code of
// 151cf8f^ and 192406d, run under tsx): the seven events of EVENTS pushed and committed, all taken,
// four marked attempted at H0 + 60 s, evt_settled_delivered settled 'delivered', evt_settled_failed
// 'failed', one more event discarded, committed and closed. LEDGER is what their ledger() answered then.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SpoolStore, decodeEvent, encodeEvent } from '../../src/store/spool-store';
import type { QueuedEvent } from '../../src/store/queue';
import type { LedgerRow } from '../../src/store/types';
import { tempDir } from './helpers';

const HOUR = 3_600_000;
const H0 = Date.UTC(2026, 5, 15, 10);
const ATTEMPTED_AT = H0 + 60_000;
/** The fixtures' hours are long past: keep them. */
const KEEP = 100 * 365 * 24 * HOUR;

const EVENTS: QueuedEvent[] = [
  { eventName: 'api_requests', customerId: 'cus_a', value: '3', timestamp: H0 + 5, identifier: 'evt_plain', dimensions: undefined, seq: 1 },
  { eventName: 'api_requests', customerId: 'cus_a', value: '999999999999999', timestamp: H0 + 6, identifier: 'evt_{brace}\u0000nul', dimensions: { region: 'eu', 'k{': 'v"}\u2028' }, seq: 2 },
  { eventName: 'tökens {x}', customerId: 'cus_üé', value: '100000000000000000000', timestamp: H0 + HOUR + 7, identifier: 'evt_😀_astral', dimensions: undefined, seq: 3 },
  { eventName: 'a', customerId: 'c'.repeat(255), value: '7', timestamp: H0 + HOUR + 8, identifier: 'i'.repeat(100), dimensions: { plan: 'p' }, seq: 4 },
  { eventName: 'api_requests', customerId: 'cus_b', value: '4', timestamp: H0 + 9, identifier: 'evt_settled_delivered', dimensions: undefined, seq: 5 },
  { eventName: 'api_requests', customerId: 'cus_b', value: '5', timestamp: H0 + 10, identifier: 'evt_settled_failed', dimensions: undefined, seq: 6 },
  { eventName: 'api_requests', customerId: 'cus_b', value: '6', timestamp: H0 + 11, identifier: 'evt_attempted', dimensions: undefined, seq: 7 },
];
const SETTLED = new Set(['evt_settled_delivered', 'evt_settled_failed']);
const ATTEMPTED = new Set(['evt_{brace}\u0000nul', 'evt_attempted']);
/** The rows each fixture holds, in id order, as recover() hands them back (seq 0: reported by an earlier process). */
const HELD = EVENTS.filter((e) => !SETTLED.has(e.identifier)).map((e) => ({ ...e, seq: 0 }));

const tally = (count: number, value: string) => ({ count, value });
const zero = tally(0, '0');
const row = (hour: number, customerId: string, eventName: string, cells: Partial<Record<'accepted' | 'delivered' | 'failed' | 'dropped', ReturnType<typeof tally>>>): LedgerRow => ({
  hour,
  customerId,
  eventName,
  accepted: zero,
  delivered: zero,
  failed: zero,
  dropped: zero,
  uncertain: zero,
  ...cells,
});
const LEDGER: LedgerRow[] = [
  row(H0, 'cus_a', 'api_requests', { accepted: tally(2, '1000000000000002') }),
  row(H0, 'cus_b', 'api_requests', { accepted: tally(4, '17'), delivered: tally(1, '4'), failed: tally(1, '5'), dropped: tally(1, '2') }),
  row(H0 + HOUR, 'c'.repeat(255), 'a', { accepted: tally(1, '7') }),
  row(H0 + HOUR, 'cus_üé', 'tökens {x}', { accepted: tally(1, '100000000000000000000') }),
];

function ledgerOf(store: SpoolStore): LedgerRow[] {
  return store.ledger({ from: H0, to: H0 + 2 * HOUR });
}

/** A copy of a fixture in a temporary directory: opening migrates a file in place, and any SQLite client may add its companions beside it. */
function copyOf(fixture: string): string {
  const file = path.join(tempDir(), fixture);
  fs.copyFileSync(path.join(__dirname, 'fixtures', fixture), file);
  return file;
}

/** A query on a closed spool from another process, as any SQLite client could run it. */
function sqlite(file: string, query: string): unknown {
  const script = "const D = require('better-sqlite3'); const db = new D(process.argv[1], { readonly: true }); process.stdout.write(JSON.stringify(db.prepare(process.argv[2]).raw().all())); db.close();";
  return JSON.parse(execFileSync(process.execPath, ['-e', script, file, query], { encoding: 'utf8' }));
}

describe.each([
  ['schema-1.spool', 1],
  ['schema-2.spool', 2],
])('a spool written by version %s', (fixture, version) => {
  it(`is version ${version} before it is opened`, () => {
    expect(sqlite(copyOf(fixture), 'PRAGMA user_version')).toEqual([[version]]);
  });

  it('opens with the same events, in order, and the same ledger figures', () => {
    const file = copyOf(fixture);
    const store = SpoolStore.open({ path: file, ledgerRetentionMs: KEEP });
    expect(ledgerOf(store)).toEqual(LEDGER);
    const { resend, expired, uncertain } = store.recover(H0 + 2 * HOUR);
    expect([expired, uncertain]).toEqual([[], []]);
    expect(resend).toEqual(HELD);
    store.close();
    expect(sqlite(file, 'PRAGMA user_version')).toEqual([[3]]);
    expect(sqlite(file, 'SELECT name FROM pragma_table_info(\'events\')')).toEqual([['id'], ['event'], ['timestamp'], ['first_attempt_at']]);
  });

  it('keeps the row ids and attempt marks: an event attempted a day ago is uncertain, the others resend', () => {
    const before = sqlite(copyOf(fixture), 'SELECT id, identifier, first_attempt_at FROM events ORDER BY id') as [number, string, number | null][];
    const file = copyOf(fixture);
    const store = SpoolStore.open({ path: file, ledgerRetentionMs: KEEP });
    const { resend, uncertain } = store.recover(ATTEMPTED_AT + 24 * HOUR);
    expect(uncertain.map((u) => [u.event.identifier, u.firstAttemptAt])).toEqual(HELD.filter((e) => ATTEMPTED.has(e.identifier)).map((e) => [e.identifier, ATTEMPTED_AT]));
    expect(resend.map((e) => e.identifier)).toEqual(HELD.filter((e) => !ATTEMPTED.has(e.identifier)).map((e) => e.identifier));
    store.close();
    const after = sqlite(file, 'SELECT id, event, first_attempt_at FROM events ORDER BY id') as [number, string, number | null][];
    expect(after.map(([id, text, mark]) => [id, decodeEvent(text, 0)!.identifier, mark])).toEqual(before);
  });

  it('counts each migrated row once when it leaves, across a reopen', () => {
    const file = copyOf(fixture);
    const first = SpoolStore.open({ path: file, ledgerRetentionMs: KEEP });
    const left = first.recover(H0 + 2 * HOUR).resend;
    first.settle(left.slice(0, 2), 'delivered');
    first.settle(left.slice(2), 'failed');
    const settled = ledgerOf(first);
    first.close();
    expect(settled[0]).toEqual(row(H0, 'cus_a', 'api_requests', { accepted: tally(2, '1000000000000002'), delivered: tally(2, '1000000000000002') }));
    expect(settled[1]).toEqual(row(H0, 'cus_b', 'api_requests', { accepted: tally(4, '17'), delivered: tally(1, '4'), failed: tally(2, '11'), dropped: tally(1, '2') }));
    // The accepted figures never move: a row counts as accepted while held and through its outcome after.
    expect(settled.map((r) => r.accepted)).toEqual(LEDGER.map((r) => r.accepted));
    const second = SpoolStore.open({ path: file, ledgerRetentionMs: KEEP });
    expect(ledgerOf(second)).toEqual(settled);
    expect(second.recover(H0 + 2 * HOUR).resend).toEqual([]);
    second.close();
  });
});

describe('the schema-3 event encoding', () => {
  it('gives back every field, whatever characters the strings hold', () => {
    for (const event of [...EVENTS, { ...EVENTS[0]!, identifier: '\u0001\u0002', eventName: '{}', customerId: 'x{y', dimensions: {} }]) {
      expect(decodeEvent(encodeEvent(event), event.timestamp)).toEqual({ ...event, seq: 0 });
    }
  });

  it('takes a row whose value is not the digits it wrote for a damaged one', () => {
    for (const event of [EVENTS[0]!, EVENTS[1]!]) {
      expect(decodeEvent(encodeEvent(event), 0)).toBeDefined();
      for (const value of ['', '1x', '-1', '1.5', ' 1']) expect(decodeEvent(encodeEvent({ ...event, value }), 0)).toBeUndefined();
    }
  });

  it('refuses a damaged row on open as ERR_METER_SPOOL_CORRUPT', () => {
    const file = copyOf('schema-2.spool');
    SpoolStore.open({ path: file, ledgerRetentionMs: KEEP }).close();
    const script = "const D = require('better-sqlite3'); const db = new D(process.argv[1]); db.exec(\"UPDATE events SET event = char(90, 1, 1) || 'ab' WHERE id = (SELECT min(id) FROM events)\"); db.close();";
    execFileSync(process.execPath, ['-e', script, file]);
    expect(() => SpoolStore.open({ path: file, ledgerRetentionMs: KEEP })).toThrow(expect.objectContaining({ code: 'ERR_METER_SPOOL_CORRUPT' }));
  });
});
