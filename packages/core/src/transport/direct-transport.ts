// One event per POST /v2/billing/meter_events, never two in flight for the same customer and meter.
import type { ResolvedConfig } from '../config';
import { MeterUnauthorizedError, StripeApiError } from '../errors';
import { isKeyRefused } from '../delivery/retry';
import type { StripeHttp } from './http';
import type { QueuedEvent } from '../store/queue';
import type { Transport } from './transport';
import { toWireEvent } from './wire';

const EVENTS_PATH = '/v2/billing/meter_events';

/** Stripe already has an event with this identifier: for the sender, that is delivered. */
export function isDuplicate(error: unknown): boolean {
  return error instanceof StripeApiError && error.status === 400 && error.stripeCode === 'duplicate_meter_event';
}

// Private fields: the config's key stays out of util.inspect and JSON.
export class DirectTransport implements Transport {
  readonly #config: ResolvedConfig;
  readonly #http: StripeHttp;

  constructor(config: ResolvedConfig, http: StripeHttp) {
    this.#config = config;
    this.#http = http;
  }

  async send(batch: readonly QueuedEvent[], idempotencyKey: string, signal: AbortSignal, sending: () => void): Promise<void> {
    const { customerKey, valueKey, apiOrigin, apiKey } = this.#config;
    sending();
    for (const event of batch) {
      try {
        await this.#http.post(apiOrigin, EVENTS_PATH, { bearer: apiKey, body: toWireEvent(event, customerKey, valueKey), idempotencyKey, signal, context: event.account });
      } catch (error) {
        if (isKeyRefused(error)) throw new MeterUnauthorizedError(error.status, error);
        if (!isDuplicate(error)) throw error;
      }
    }
  }

  // Stripe allows one concurrent call per customer per meter and answers 409 to the second.
  exclusiveKey(event: QueuedEvent): string {
    return `${event.account ?? ''}\u0000${event.eventName}\u0000${event.customerId}`;
  }
}
