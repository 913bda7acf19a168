// Child: pushes events turn after turn and prints each identifier once its durability point has passed, until killed; with 'settle', also settles the oldest half of each turn's worth as delivered.
import { SpoolStore } from '../../../src/store/spool-store';
import type { SpoolDurability } from '../../../src/store/types';

const [file, durability, prefix, settle] = process.argv.slice(2) as [string, SpoolDurability, string, string | undefined];
const store = SpoolStore.open({ path: file, durability });
const PER_TURN = 20;
let n = 0;

function turn(): void {
  const pushed: string[] = [];
  for (let i = 0; i < PER_TURN; i += 1) {
    const identifier = `${prefix}_${(n += 1)}`;
    store.push({ eventName: 'api_requests', customerId: `cus_${n % 7}`, value: String(n), timestamp: Date.now(), identifier, seq: n });
    // 'event': committed when push() returns.
    if (durability === 'event') process.stdout.write(`${identifier}\n`);
    else pushed.push(identifier);
  }
  // A delivery's commit (row deletes and ledger cells) in the same turns as the pushes.
  if (settle === 'settle') store.settle(store.take(PER_TURN / 2), 'delivered');
  // 'turn': this immediate was queued after the store's commit of the turn, so it runs once that is done.
  setImmediate(() => {
    if (pushed.length > 0) process.stdout.write(`${pushed.join('\n')}\n`);
    turn();
  });
}
process.stdout.write('started\n');
turn();
