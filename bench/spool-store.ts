// What the on-disk spool costs: push() per event in each durability and synchronous mode, and take+settle throughput.
//
//   npx tsx bench/spool-store.ts [--samples 3000]
//
// 'turn' is timed as the reporter will see it: N pushes and the commit that ends their turn, divided
// by N (the commit is called directly, as the store's setImmediate would). 'event' times each push
// alone: its commit is inside. The spool lives in os.tmpdir(), so on the disk that holds it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SpoolStore } from '../packages/core/src/store/spool-store';
import type { SpoolDurability, SpoolSynchronous } from '../packages/core/src/store/types';
import type { QueuedEvent } from '../packages/core/src/store/queue';
import { median, percentile } from './lib/stats';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i === -1 ? Number.NaN : Number(process.argv[i + 1]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

const SAMPLES = flag('samples', 3000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metered-spool-bench-'));
let seq = 0;

function nextEvent(): QueuedEvent {
  seq += 1;
  return { eventName: 'api_requests', customerId: `cus_${seq % 50}`, value: '1', timestamp: Date.now(), identifier: `evt_${seq}_bench0123456789`, dimensions: undefined, seq };
}

function open(durability: SpoolDurability, synchronous: SpoolSynchronous): SpoolStore {
  return SpoolStore.open({ path: path.join(dir, `${durability}-${synchronous}-${seq}.spool`), durability, synchronous });
}

/** Settles what a run left queued, so the next sample starts from a small spool as in steady state. */
function settleAll(store: SpoolStore): void {
  while (store.size > 0) store.settle(store.take(100), 'delivered');
  store.commit();
}

function pushPerEvent(durability: SpoolDurability, synchronous: SpoolSynchronous, perTurn: number): { median: number; p99: number } {
  const store = open(durability, synchronous);
  const perEvent: number[] = [];
  const turns = Math.max(50, Math.ceil(SAMPLES / perTurn));
  for (let t = 0; t < turns; t += 1) {
    const events = Array.from({ length: perTurn }, nextEvent);
    if (durability === 'event') {
      for (const event of events) {
        const start = process.hrtime.bigint();
        store.push(event);
        perEvent.push(Number(process.hrtime.bigint() - start));
      }
    } else {
      const start = process.hrtime.bigint();
      for (const event of events) store.push(event);
      store.commit();
      perEvent.push(Number(process.hrtime.bigint() - start) / perTurn);
    }
    if (store.size >= 1000) settleAll(store);
  }
  store.close();
  const sorted = [...perEvent].sort((a, b) => a - b);
  return { median: median(perEvent), p99: percentile(sorted, 99) };
}

function pushCallOnly(): number {
  const store = open('turn', 'normal');
  const samples: number[] = [];
  for (let t = 0; t < SAMPLES; t += 1) {
    const event = nextEvent();
    const start = process.hrtime.bigint();
    store.push(event);
    samples.push(Number(process.hrtime.bigint() - start));
    if (t % 100 === 99) store.commit();
    if (store.size >= 1000) settleAll(store);
  }
  store.close();
  return median(samples);
}

function takeSettleThroughput(synchronous: SpoolSynchronous, total: number): { perSecond: number; bytesAfter: number } {
  const store = open('turn', synchronous);
  for (let i = 0; i < total; i += 1) store.push(nextEvent());
  store.commit();
  const start = process.hrtime.bigint();
  // One request's life per batch: taken, marked attempted (committed before the send), settled, committed at the turn's end.
  while (store.size > 0) {
    const batch = store.take(100);
    store.markAttempted(batch, Date.now());
    store.settle(batch, 'delivered');
    store.commit();
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const bytesAfter = ['', '-wal'].reduce((sum, suffix) => sum + (fs.existsSync(store.path + suffix) ? fs.statSync(store.path + suffix).size : 0), 0);
  store.close();
  return { perSecond: total / seconds, bytesAfter };
}

const us = (ns: number) => `${(ns / 1000).toFixed(2)} µs`;
console.log(`spool store, ${os.cpus().length} CPU(s), node ${process.version}, spool in ${os.tmpdir()}, ${SAMPLES} samples per row\n`);
console.log(`push() call alone ('turn', commit excluded): median ${us(pushCallOnly())}`);
for (const synchronous of ['normal', 'full'] as const) {
  for (const perTurn of [1, 10, 100]) {
    const r = pushPerEvent('turn', synchronous, perTurn);
    console.log(`'turn'  synchronous ${synchronous.padEnd(6)} ${String(perTurn).padStart(3)} event(s)/turn, push + commit per event: median ${us(r.median)}, p99 ${us(r.p99)}`);
  }
  const r = pushPerEvent('event', synchronous, 1);
  console.log(`'event' synchronous ${synchronous.padEnd(6)} push (its commit inside): median ${us(r.median)}, p99 ${us(r.p99)}`);
}
for (const synchronous of ['normal', 'full'] as const) {
  const total = synchronous === 'normal' ? 100_000 : 20_000;
  const r = takeSettleThroughput(synchronous, total);
  console.log(`take(100) + markAttempted + settle + commit, synchronous ${synchronous}: ${Math.round(r.perSecond).toLocaleString('en')} events/s over ${total.toLocaleString('en')} events; ${Math.round(r.bytesAfter / 1024)} KiB on disk after`);
}
fs.rmSync(dir, { recursive: true, force: true });
