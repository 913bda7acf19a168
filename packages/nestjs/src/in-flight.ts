// The requests being metered, per module config: flush() and shutdown wait for those open when they ask.

/** One request being metered; `waiters` only once someone waits for it. */
export interface InFlightEntry {
  waiters: Array<() => void> | undefined;
}

/**
 * Requests being metered, as plain entries rather than a promise each: every request opens and
 * ends one, and only a `settled()` call (a flush, a shutdown) pays for promises, for the requests
 * open at that moment (docs/BENCHMARKS.md).
 */
export class InFlight {
  private readonly open = new Set<InFlightEntry>();

  get size(): number {
    return this.open.size;
  }

  begin(): InFlightEntry {
    return this.add({ waiters: undefined });
  }

  /** Opens `entry` itself (a request's own record, so that it needs no entry of its own besides), returned. */
  add<T extends InFlightEntry>(entry: T): T {
    this.open.add(entry);
    return entry;
  }

  /** Ends `entry` (once; again is a no-op), releasing whoever waits for it. */
  end(entry: InFlightEntry): void {
    if (!this.open.delete(entry)) return;
    const waiters = entry.waiters;
    if (waiters === undefined) return;
    entry.waiters = undefined;
    for (const wake of waiters) wake();
  }

  /** Ends the entry once `work` settles, whichever way. */
  track(work: Promise<unknown>): void {
    const entry = this.begin();
    const end = (): void => this.end(entry);
    work.then(end, end);
  }

  /** Resolves once every request open now has ended; requests opened later are not waited for. */
  settled(): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    const waits = [...this.open].map(
      (entry) =>
        new Promise<void>((resolve) => {
          (entry.waiters ??= []).push(resolve);
        }),
    );
    return Promise.all(waits).then(() => undefined);
  }
}
