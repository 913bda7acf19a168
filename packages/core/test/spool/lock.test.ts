// One owner per spool: a second process (or store) is refused with ERR_METER_SPOOL_LOCKED, and a SIGKILLed owner leaves no lock behind.
import path from 'node:path';
import { MeterSpoolError } from '../../src/errors';
import { MemoryDurableStore } from '../../src/store/memory-store';
import { SpoolStore, openSpoolOrMemory } from '../../src/store/spool-store';
import { startChild, tempDir } from './helpers';

jest.setTimeout(30_000);

describe('the spool lock', () => {
  it('refuses a second process while the first holds the spool, and frees it when the owner is SIGKILLed', async () => {
    const file = path.join(tempDir(), 'meter.spool');
    const owner = startChild('hold', [file]);
    await owner.waitForLine((line) => line.startsWith('ready'));

    const second = await startChild('open', [file]).done;
    expect(JSON.parse(second.stdout)).toMatchObject({ opened: false, code: 'ERR_METER_SPOOL_LOCKED', sqliteCode: 'SQLITE_BUSY' });
    expect(() => SpoolStore.open({ path: file })).toThrow(expect.objectContaining({ code: 'ERR_METER_SPOOL_LOCKED' }));

    owner.kill('SIGKILL');
    expect((await owner.done).signal).toBe('SIGKILL');
    // The kernel dropped the dead owner's lock; its committed event is there to resend.
    const third = await startChild('open', [file]).done;
    expect(JSON.parse(third.stdout)).toEqual({ opened: true, size: 1 });
  });

  it('refuses a second store in the same process', () => {
    const file = path.join(tempDir(), 'meter.spool');
    const first = SpoolStore.open({ path: file });
    let error: unknown;
    try {
      SpoolStore.open({ path: file });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(MeterSpoolError);
    expect(error).toMatchObject({ code: 'ERR_METER_SPOOL_LOCKED', path: file });
    first.close();
    SpoolStore.open({ path: file }).close();
  });

  it('openSpoolOrMemory falls back to memory on a locked spool, reporting the coded error instead of sending twice', () => {
    const file = path.join(tempDir(), 'meter.spool');
    const first = SpoolStore.open({ path: file });
    const errors: MeterSpoolError[] = [];
    const store = openSpoolOrMemory({ path: file, onError: (e) => errors.push(e) });
    expect(store).toBeInstanceOf(MemoryDurableStore);
    expect(errors.map((e) => e.code)).toEqual(['ERR_METER_SPOOL_LOCKED']);
    first.close();
  });
});
