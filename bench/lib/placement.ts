// Which CPUs the code under test gets, and which the tools (load generator, fake Stripe) get.
import os from 'node:os';
import { canPin, pinSelf } from './proc';

const cores = os.availableParallelism();
const pinned = cores > 1 && canPin();

/**
 * On 2 cores, a server sharing a core with its load generator measures the scheduler as much as the
 * server: the code under test gets CPU 0 to itself, the tools share the others. One core, or no
 * taskset: nothing is pinned, and the report says so.
 */
export const placement = {
  cores,
  pinned,
  server: pinned ? '0' : undefined,
  tools: pinned ? (cores === 2 ? '1' : `1-${cores - 1}`) : undefined,
  describe: pinned
    ? `code under test pinned to CPU 0; load generator and fake Stripe pinned to CPU ${cores === 2 ? '1' : `1-${cores - 1}`}`
    : 'no CPU pinning (one core, or taskset unavailable): code under test and tools share the cores',
} as const;

/** Pins this process (the load generator) to the tools' CPUs. */
export function pinTools(): void {
  if (placement.tools !== undefined) pinSelf(placement.tools);
}
