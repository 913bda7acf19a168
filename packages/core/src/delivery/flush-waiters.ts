// flush()'s waiters: each waits for the events reported before it, and one ref'd handle keeps the process up while any waits.
import { cancellableSleep } from '../timers';
import type { QueuedEvent } from '../store/queue';
import type { FlushResult } from '../types';

interface FlushWaiter {
  /** The last intake sequence number the flush waits for. */
  readonly target: number;
  /** Events with `seq <= target` not yet settled. */
  remaining: number;
  /** Settles the flush: `true` when every event it waited for settled. */
  readonly finish: (settled: boolean) => void;
}

export class FlushWaiters {
  private readonly waiters: FlushWaiter[] = [];
  private keepAlive: NodeJS.Timeout | undefined;

  /** Resolves once `remaining` events with `seq <= target` settled, or after `timeoutMs` with `settled: false`. */
  wait(target: number, remaining: number, timeoutMs: number): Promise<FlushResult> {
    return new Promise<FlushResult>((resolve) => {
      const timer = cancellableSleep(timeoutMs);
      let done = false;
      const waiter: FlushWaiter = {
        target,
        remaining,
        finish: (settled) => {
          if (done) return;
          done = true;
          timer.cancel();
          resolve({ settled, pending: settled ? 0 : waiter.remaining });
        },
      };
      void timer.done.then(() => {
        if (done) return;
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        waiter.finish(false);
        this.releaseProcess();
      });
      this.waiters.push(waiter);
      this.holdProcessOpen();
    });
  }

  /** Counts settled events against every flush waiting on them. */
  settle(events: readonly QueuedEvent[]): void {
    if (this.waiters.length === 0) return;
    for (let i = this.waiters.length - 1; i >= 0; i -= 1) {
      const waiter = this.waiters[i]!;
      for (const event of events) if (event.seq <= waiter.target) waiter.remaining -= 1;
      if (waiter.remaining <= 0) {
        this.waiters.splice(i, 1);
        waiter.finish(true);
      }
    }
    if (this.waiters.length === 0) this.releaseProcess();
  }

  /** Resolves every waiter as settled (shutdown: nothing is left to wait for). */
  finishAll(): void {
    for (const waiter of this.waiters.splice(0)) waiter.finish(true);
    this.releaseProcess();
  }

  // Timers are unref'd so an idle reporter never keeps a process alive; while someone awaits a
  // flush or close, one ref'd handle keeps the process up until the promise settles.
  private holdProcessOpen(): void {
    this.keepAlive ??= setInterval(() => undefined, 1 << 30);
  }

  private releaseProcess(): void {
    if (this.keepAlive !== undefined && this.waiters.length === 0) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }
}
