// The user's hooks (onError, onDrop) and their logger fallbacks: guarded, so a hook that throws never breaks delivery.
import type { ResolvedConfig } from '../config';
import type { MeterError } from '../errors';
import type { DropReason, MeterEvent, MeterLogger } from '../types';

/** Drop warnings are logged at most this often (an outage can drop many events a second). */
const DROP_LOG_INTERVAL_MS = 10_000;

export class Hooks {
  private lastDropLog = 0;
  private dropsSinceLog = 0;

  constructor(
    private readonly config: ResolvedConfig,
    readonly logger: MeterLogger,
  ) {}

  /** Hands `error` to `onError`, or logs it without one. Never throws. */
  error(error: MeterError, events: readonly MeterEvent[] = []): void {
    this.call('onError', () => {
      if (this.config.onError) this.config.onError(error, events);
      else this.logger.error({ code: error.code, events: events.length, err: { name: error.name, message: error.message } }, error.message);
    });
  }

  /** Hands dropped events to `onDrop`, or logs a (throttled, for overflow) warning without one. Never throws. */
  drop(events: readonly MeterEvent[], reason: DropReason): void {
    this.call('onDrop', () => {
      if (this.config.onDrop) {
        this.config.onDrop(events, reason);
        return;
      }
      this.dropsSinceLog += events.length;
      const now = Date.now();
      if (reason === 'overflow' && now - this.lastDropLog < DROP_LOG_INTERVAL_MS) return;
      this.logger.warn({ code: 'WARN_METER_EVENTS_DROPPED', reason, count: this.dropsSinceLog }, `${this.dropsSinceLog} meter event(s) dropped undelivered (${reason})`);
      this.lastDropLog = now;
      this.dropsSinceLog = 0;
    });
  }

  // A user's hook that throws must not break delivery; its failure is logged instead.
  private call(name: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.logger.error({ code: 'ERR_METER_HOOK_THREW', hook: name, err: error instanceof Error ? { name: error.name, message: error.message } : String(error) }, `${name} threw`);
    }
  }
}
