// The fake's event destination: rejected stream events batched per meter into Stripe's thin meter error events, signed and POSTed.
// Event shapes follow https://docs.stripe.com/api/v2/core/events/event-types and https://docs.stripe.com/api/v2/core/events/object;
// the signature follows https://docs.stripe.com/webhooks#verify-manually. Where those pages are silent the fake chooses,
// and says so: the batching window (Stripe's example report spans 10 s), the number of samples per code, and no retries.
import { signWebhookPayload } from '@metered/core';
import { randomId } from './random';
import type { FakeMeter, FakeWebhooks, RejectedEventRecord, WebhookDelivery } from './types';

/** Samples kept per error code in one report; Stripe documents a list of samples without saying how long. */
export const SAMPLE_ERRORS_PER_CODE = 5;

interface PendingReport {
  readonly type: RejectedEventRecord['report'];
  /** The connected account whose events it reports (their `Stripe-Context`), or undefined for the platform's. */
  readonly account: string | undefined;
  readonly meter: FakeMeter | undefined;
  readonly opened: number;
  readonly records: RejectedEventRecord[];
}

/** A `v2.core.event` as `GET /v2/core/events/{id}` returns it (with `data`). */
export type StoredEvent = Record<string, unknown> & { id: string };

export interface WebhookEmitterConfig {
  url: string | null;
  readonly secrets: readonly string[];
  readonly batchWindowMs: number;
  readonly livemode: boolean;
  readonly now: () => number;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export class WebhookEmitter implements FakeWebhooks {
  private readonly pending = new Map<string, PendingReport>();
  private readonly stored = new Map<string, StoredEvent>();
  private readonly log: WebhookDelivery[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly waiters: Array<{ count: number; resolve: () => void }> = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly config: WebhookEmitterConfig) {}

  get url(): string | null {
    return this.config.url;
  }

  get secrets(): readonly string[] {
    return this.config.secrets;
  }

  setUrl(url: string | null): void {
    this.config.url = url;
  }

  /**
   * Files a rejection under its report: one per account and meter for error reports, one per account for
   * every event naming no meter. A connected account's report carries its id as the event's `context`.
   */
  add(record: RejectedEventRecord, meter: FakeMeter | undefined): void {
    const account = record.account;
    const key = `${account ?? ''}\u0000${record.report === 'v1.billing.meter.no_meter_found' ? 'no_meter' : `meter:${meter?.id ?? ''}`}`;
    let report = this.pending.get(key);
    if (report === undefined) {
      report = { type: record.report, account, meter: record.report === 'v1.billing.meter.no_meter_found' ? undefined : meter, opened: this.config.now(), records: [] };
      this.pending.set(key, report);
    }
    report.records.push(record);
    if (this.timer === undefined && !this.closed) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.config.batchWindowMs);
      this.timer.unref();
    }
  }

  async flush(): Promise<WebhookDelivery[]> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const reports = [...this.pending.values()];
    this.pending.clear();
    const sent = reports.map((report) => this.send(this.store(report)));
    return Promise.all(sent);
  }

  deliveries(): WebhookDelivery[] {
    return [...this.log];
  }

  delivered(count = 1): Promise<void> {
    if (this.log.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  /**
   * The full event for `GET /v2/core/events/{id}`, asked under `context` (the request's `Stripe-Context`):
   * a connected account's event is found only under its own context, the platform's only without one.
   */
  event(id: string, context?: string): StoredEvent | undefined {
    const event = this.stored.get(id);
    return event !== undefined && event.context === (context ?? null) ? event : undefined;
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
    this.stored.clear();
    this.log.length = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all([...this.inFlight]);
    for (const waiter of this.waiters.splice(0)) waiter.resolve();
  }

  private store(report: PendingReport): StoredEvent {
    const byCode = new Map<string, RejectedEventRecord[]>();
    for (const record of report.records) {
      const list = byCode.get(record.code) ?? [];
      list.push(record);
      byCode.set(record.code, list);
    }
    const count = report.records.length;
    const now = this.config.now();
    const event: StoredEvent = {
      id: randomId(this.config.livemode ? 'evt_' : 'evt_test_', 48),
      object: 'v2.core.event',
      type: report.type,
      context: report.account ?? null,
      created: iso(now),
      livemode: this.config.livemode,
      reason: null,
      ...(report.meter === undefined ? {} : { related_object: { id: report.meter.id, type: 'billing.meter', url: `/v1/billing/meters/${report.meter.id}` } }),
      data: {
        developer_message_summary: count === 1 ? 'There is 1 invalid event' : `There are ${count} invalid events`,
        reason: {
          error_count: count,
          error_types: [...byCode].map(([code, records]) => ({
            code,
            error_count: records.length,
            sample_errors: records.slice(0, SAMPLE_ERRORS_PER_CODE).map((r) => ({ error_message: r.message, request: { identifier: r.identifier } })),
          })),
        },
        validation_end: iso(now),
        validation_start: iso(report.opened),
      },
    };
    this.stored.set(event.id, event);
    return event;
  }

  /** POSTs the thin form (no `data`, as Stripe pushes thin events) and records the outcome. */
  private send(event: StoredEvent): Promise<WebhookDelivery> {
    const { data: _data, ...thin } = event;
    const body = JSON.stringify(thin);
    const signature = signWebhookPayload(body, this.config.secrets, Math.floor(this.config.now() / 1000));
    const url = this.config.url;
    const attempt = (async (): Promise<WebhookDelivery> => {
      let status: number | null = null;
      let error: string | null = url === null ? 'no webhook URL is set' : null;
      if (url !== null) {
        try {
          const response = await fetch(url, {
            method: 'POST',
            headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signature, 'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)' },
            body,
          });
          status = response.status;
          await response.arrayBuffer();
        } catch (cause) {
          error = cause instanceof Error ? cause.message : String(cause);
        }
      }
      const delivery: WebhookDelivery = Object.freeze({ eventId: event.id, type: event.type as WebhookDelivery['type'], url, body, signature, status, error });
      this.log.push(delivery);
      for (const waiter of [...this.waiters]) {
        if (this.log.length >= waiter.count) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
      return delivery;
    })();
    const tracked = attempt.then(() => undefined);
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
    return attempt;
  }
}
