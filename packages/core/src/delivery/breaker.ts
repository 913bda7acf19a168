// A circuit breaker for a refused secret key: while open, one request at a time probes at a growing interval.
import { sleep } from '../timers';

/** The first probe after Stripe refuses the key: soon enough to recover from a key rotated a moment late. */
export const BREAKER_FIRST_PROBE_MS = 5_000;
/** The longest gap between probes: a revoked key costs at most 12 requests an hour. */
export const BREAKER_MAX_PROBE_MS = 300_000;

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * Closed, every request goes. Open (after a 401/403 on the secret key), requests wait in `turn()`;
 * once the probe interval has passed one of them goes as a probe, and its outcome closes the breaker
 * (`succeeded()`), doubles the interval (`refused()`), or lets the next waiter probe (`probeFailed()`).
 */
export class CredentialBreaker {
  #open = false;
  #intervalMs = BREAKER_FIRST_PROBE_MS;
  #probeAt = 0;
  #probing = false;
  #timer: AbortController | undefined;
  readonly #waiters: Waiter[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  get isOpen(): boolean {
    return this.#open;
  }

  /**
   * Stripe refused the key: opens the breaker, or after a refused probe doubles the interval (other
   * requests of the first wave, sent before it opened, change nothing). True when this call opened it.
   */
  refused(probe: boolean): boolean {
    const opened = !this.#open;
    if (!opened && !probe) return false;
    this.#probing = false;
    this.#intervalMs = opened ? BREAKER_FIRST_PROBE_MS : Math.min(BREAKER_MAX_PROBE_MS, this.#intervalMs * 2);
    this.#open = true;
    this.#probeAt = this.now() + this.#intervalMs;
    this.#schedule();
    return opened;
  }

  /** A request with the key succeeded: every waiting request goes. */
  succeeded(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#probing = false;
    this.#timer?.abort();
    this.#timer = undefined;
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
  }

  /** The probe ended in something that says nothing about the key (a network error): the next waiter probes at once. */
  probeFailed(): void {
    if (!this.#open || !this.#probing) return;
    this.#probing = false;
    this.#probeAt = Math.min(this.#probeAt, this.now());
    this.#schedule();
  }

  /**
   * Resolves when the caller may send: at once while closed, or as the probe once it is due; rejects
   * when `signal` aborts. Returns whether the caller is the probe.
   */
  async turn(signal: AbortSignal): Promise<boolean> {
    if (!this.#open) return false;
    if (signal.aborted) throw signal.reason;
    let waiter: Waiter | undefined;
    const granted = new Promise<void>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    this.#waiters.push(waiter!);
    const onAbort = (): void => {
      const index = this.#waiters.indexOf(waiter!);
      if (index >= 0) this.#waiters.splice(index, 1);
      waiter!.reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    this.#schedule();
    try {
      await granted;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    return this.#open;
  }

  #schedule(): void {
    this.#timer?.abort();
    this.#timer = undefined;
    if (!this.#open || this.#probing || this.#waiters.length === 0) return;
    const wait = this.#probeAt - this.now();
    if (wait <= 0) {
      this.#probing = true;
      this.#waiters.shift()!.resolve();
      return;
    }
    const timer = new AbortController();
    this.#timer = timer;
    // Unref'd: a breaker waiting to probe never keeps a process alive (a flush or close holds it when awaited).
    sleep(wait, timer.signal).then(
      () => {
        if (this.#timer === timer) this.#schedule();
      },
      () => undefined,
    );
  }
}

