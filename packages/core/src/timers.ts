// Waits of any length: Node fires a timer armed with 2^31 ms or more after 1 ms, so long waits go in chunks.
import { setTimeout as delay } from 'node:timers/promises';
import { MAX_TIMER_MS } from './config';

/**
 * Resolves after `ms` milliseconds (any finite length, in chunks no timer overflows), or rejects
 * with the signal's reason when `signal` aborts. Unref'd unless `ref` is true: a wait alone never
 * keeps a process alive.
 */
export async function sleep(ms: number, signal?: AbortSignal, ref = false): Promise<void> {
  const deadline = Date.now() + ms;
  let remaining = ms;
  do {
    await delay(Math.max(0, Math.min(remaining, MAX_TIMER_MS)), undefined, { ref, signal });
    remaining = deadline - Date.now();
  } while (remaining > 0);
}

/**
 * A wait that can be cut short: `done` resolves (never rejects) after `ms`, or at once when
 * `cancel()` is called; either way no timer is left behind.
 */
export function cancellableSleep(ms: number, ref = false): { done: Promise<void>; cancel: () => void } {
  const controller = new AbortController();
  const done = sleep(ms, controller.signal, ref).catch(() => undefined);
  return { done, cancel: () => controller.abort() };
}
