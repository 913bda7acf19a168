// Child: tries to open a spool and prints the outcome as JSON (for locks and permissions seen from another process).
import { MeterSpoolError } from '../../../src/errors';
import { SpoolStore } from '../../../src/store/spool-store';

try {
  const store = SpoolStore.open({ path: process.argv[2]! });
  process.stdout.write(`${JSON.stringify({ opened: true, size: store.recover(Date.now()).resend.length })}\n`);
  store.close();
} catch (error) {
  if (!(error instanceof MeterSpoolError)) throw error;
  process.stdout.write(`${JSON.stringify({ opened: false, code: error.code, sqliteCode: error.sqliteCode, message: error.message })}\n`);
}
