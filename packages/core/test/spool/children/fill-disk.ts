// Child under a file-size limit (ulimit -f): pushes until the spool cannot grow, then reports what the store did.
import { SpoolStore } from '../../../src/store/spool-store';
import type { MeterSpoolError } from '../../../src/errors';

// Past the limit the kernel sends SIGXFSZ, whose default kills; ignored, the write fails with EFBIG instead.
process.on('SIGXFSZ', () => undefined);
const errors: MeterSpoolError[] = [];
const store = SpoolStore.open({ path: process.argv[2]!, onError: (error) => errors.push(error) });
const TOTAL = 4000;
let pushed = 0;
let durableAfterError: boolean | undefined;

function turn(): void {
  for (let i = 0; i < 100 && pushed < TOTAL; i += 1) {
    pushed += 1;
    store.push({ eventName: 'api_requests', customerId: 'cus_full', value: String(pushed), timestamp: Date.now(), identifier: `full_${pushed}`, dimensions: { pad: 'x'.repeat(200) }, seq: pushed });
  }
  if (errors.length > 0) durableAfterError ??= store.durable;
  if (pushed < TOTAL) {
    setImmediate(turn);
    return;
  }
  setImmediate(() => {
    const taken = store.take(TOTAL);
    const distinct = new Set(taken.map((e) => e.identifier)).size;
    process.stdout.write(`${JSON.stringify({ errors: errors.map((e) => ({ code: e.code, sqliteCode: e.sqliteCode })), durableAfterError, taken: taken.length, distinct })}\n`);
    // The exit commit fails too (still over the limit); it must not crash the exit.
    process.exit(0);
  });
}
turn();
