// What the reporter needs from a way of delivering events; the stream and direct transports implement it.
import type { QueuedEvent } from '../store/queue';

export interface Transport {
  /**
   * Delivers one batch. Resolves once Stripe has every event in it; rejects with the failure
   * otherwise. The same identifiers and `idempotencyKey` are sent on every retry of a batch.
   * `sending` is called before each request that carries the events (not before a session's, which
   * carries none): from then on Stripe may have them, whatever the answer.
   */
  send(batch: readonly QueuedEvent[], idempotencyKey: string, signal: AbortSignal, sending: () => void): Promise<void>;
  /**
   * A key under which at most one request may be in flight (direct: customer and meter), or
   * undefined when requests need no such exclusion.
   */
  exclusiveKey?(event: QueuedEvent): string;
  /** Forgets what the transport holds between requests (a session token); called at shutdown. */
  dispose?(): void;
}
