// Child: a reporter with a spool against the fake (env METERED_*) that reports under load and prints each identifier once durable; or drains the spool.
import { writeSync } from 'node:fs';
import { MeterReporter } from '../../../src/index';
import type { SpoolDurability } from '../../../src/index';

const [file, durability, prefix, action] = process.argv.slice(2) as [string, SpoolDurability, string, 'produce' | 'drain'];
const reporter = new MeterReporter({
  apiKey: process.env.METERED_API_KEY!,
  apiBaseUrl: process.env.METERED_API_URL,
  meterEventsBaseUrl: process.env.METERED_EVENTS_URL,
  maxRequestsPerSecond: 10_000,
  flushIntervalMs: 20,
  retry: { initialDelayMs: 5, maxDelayMs: 50 },
  spool: { path: file, durability },
  // Anything but a clean run is the parent's to see: a spool error, a dead letter, a drop.
  onError: (error, events) => print(`onError ${error.code} ${events.length}\n`),
  onDrop: (events, reason) => print(`onDrop ${reason} ${events.length}\n`),
});
const PER_TURN = 25;

/**
 * Straight to fd 1, not through process.stdout: to a pipe that is asynchronous, and lines still in
 * its buffer at the SIGKILL would never reach the parent, which would then find events it never saw.
 */
function print(text: string): void {
  const bytes = Buffer.from(text);
  for (let offset = 0; offset < bytes.length; ) {
    try {
      offset += writeSync(1, bytes, offset);
    } catch (error) {
      // A non-blocking pipe that is full: the parent is reading, so try again.
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
  }
}
let n = 0;

function turn(): void {
  const reported: string[] = [];
  for (let i = 0; i < PER_TURN; i += 1) {
    const identifier = reporter.report({ eventName: 'api_requests', customerId: `cus_${n % 7}`, value: (n % 5) + 1, identifier: `${prefix}_${(n += 1)}` });
    // 'event': the row is committed when report() returns.
    if (durability === 'event') print(`${identifier}\n`);
    else reported.push(identifier);
  }
  // 'turn': the spool queued its commit of this turn at the first report(); this immediate, queued
  // after it, runs once that commit is done. Then the next turn, so delivery runs alongside.
  setImmediate(() => {
    if (reported.length > 0) print(`${reported.join('\n')}\n`);
    turn();
  });
}

async function drain(): Promise<void> {
  const { settled } = await reporter.flush({ timeoutMs: 30_000 });
  const result = await reporter.close();
  print(`${JSON.stringify({ settled, result, stats: reporter.stats() })}\n`);
}

print('started\n');
if (action === 'drain') void drain();
else turn();
