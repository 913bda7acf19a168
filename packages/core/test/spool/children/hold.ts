// Child: opens a spool, says so, and holds it until killed (the lock test's first owner).
import { SpoolStore } from '../../../src/store/spool-store';

const store = SpoolStore.open({ path: process.argv[2]! });
store.push({ eventName: 'api_requests', customerId: 'cus_child', value: '1', timestamp: Date.now(), identifier: `held_${process.pid}`, seq: 1 });
store.commit();
process.stdout.write(`ready ${process.pid}\n`);
setInterval(() => undefined, 1 << 30);
