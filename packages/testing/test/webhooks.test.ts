// The fake's event destination: asynchronously rejected stream events become signed thin meter error events, read back like Stripe's.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';

import { createManualClock, startFakeStripe } from '../src';
import type { FakeStripe } from '../src';
import { call, sendDirect, sendStream, stripeAt } from './support/clients';

interface Received {
  body: string;
  signature: string | undefined;
}

const clock = createManualClock(Date.UTC(2026, 0, 15, 12, 0, 0));
let fake: FakeStripe;
let server: Server;
const received: Received[] = [];
const SECRETS = ['whsec_old_secret_for_rotation', 'whsec_new_secret_for_rotation'];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ body: Buffer.concat(chunks).toString('utf8'), signature: req.headers['stripe-signature'] as string | undefined });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake = await startFakeStripe({
    now: clock.now,
    customers: ['cus_known'],
    meters: [{ event_name: 'api_requests', id: 'mtr_api' }, { event_name: 'retired', id: 'mtr_retired', status: 'inactive' }],
    webhook: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, secrets: SECRETS, batchWindowMs: 60_000 },
  });
});

afterEach(() => {
  fake.reset();
  received.length = 0;
});

afterAll(async () => {
  await fake.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function event(customer: string, identifier: string, eventName = 'api_requests'): unknown {
  return { event_name: eventName, identifier, payload: { stripe_customer_id: customer, value: '1' } };
}

describe('meter error events', () => {
  it('reports an unknown customer on the stream as a signed thin error_report_triggered that stripe-node verifies', async () => {
    const res = await sendStream(fake, [event('cus_known', 'ok-1'), event('cus_typo', 'bad-1')]);
    expect(res.status).toBe(200);
    expect(fake.rejected().map((r) => [r.identifier, r.code])).toEqual([['bad-1', 'meter_event_customer_not_found']]);

    const [delivery] = await fake.webhooks.flush();
    expect(delivery).toMatchObject({ type: 'v1.billing.meter.error_report_triggered', status: 200, error: null });
    expect(received).toHaveLength(1);
    const { body, signature } = received[0]!;
    // Thin: ids only, no data, the meter as related object.
    const thin = JSON.parse(body) as Record<string, unknown>;
    expect(thin).toMatchObject({ object: 'v2.core.event', type: 'v1.billing.meter.error_report_triggered', related_object: { id: 'mtr_api', type: 'billing.meter', url: '/v1/billing/meters/mtr_api' } });
    expect(thin).not.toHaveProperty('data');
    // One v1 per secret, each verifiable by stripe-node at the fake's clock.
    expect(signature?.match(/v1=/g)).toHaveLength(2);
    const stripe = stripeAt(fake, fake.apiKey);
    for (const secret of SECRETS) expect(stripe.webhooks.signature!.verifyHeader(body, signature!, secret, 300, undefined, clock.now())).toBe(true);
    const notification = stripe.parseEventNotification(body, signature!, SECRETS[1]!, 300, undefined, clock.now());
    expect(notification.type).toBe('v1.billing.meter.error_report_triggered');

    // The fetched event carries the sample identifier, as GET /v2/core/events/{id} does at Stripe.
    const full = await stripe.v2.core.events.retrieve(notification.id);
    expect(full).toMatchObject({
      data: {
        developer_message_summary: 'There is 1 invalid event',
        reason: { error_count: 1, error_types: [{ code: 'meter_event_customer_not_found', error_count: 1, sample_errors: [{ request: { identifier: 'bad-1' } }] }] },
      },
    });
    const meter = await call(fake, '/v1/billing/meters/mtr_api', { method: 'GET' });
    expect(meter.json).toMatchObject({ id: 'mtr_api', event_name: 'api_requests' });
  });

  it('batches the rejections of one window into one report per meter, and names no meter for no_meter', async () => {
    await sendStream(fake, [event('cus_typo', 'a'), event('cus_other', 'b'), event('cus_known', 'c', 'retired'), event('cus_known', 'd', 'nothing')]);
    const deliveries = await fake.webhooks.flush();
    expect(deliveries.map((d) => d.type).sort()).toEqual(['v1.billing.meter.error_report_triggered', 'v1.billing.meter.error_report_triggered', 'v1.billing.meter.no_meter_found']);
    const stripe = stripeAt(fake, fake.apiKey);
    const events = await Promise.all(deliveries.map((d) => stripe.v2.core.events.retrieve(d.eventId)));
    const api = events.find((e) => (e as { related_object?: { id: string } }).related_object?.id === 'mtr_api') as unknown as { data: { reason: { error_count: number } } };
    expect(api.data.reason.error_count).toBe(2);
    const noMeter = events.find((e) => e.type === 'v1.billing.meter.no_meter_found') as unknown as Record<string, unknown>;
    expect(noMeter).not.toHaveProperty('related_object');
    expect(noMeter).toMatchObject({ data: { reason: { error_types: [{ code: 'no_meter', sample_errors: [{ request: { identifier: 'd' } }] }] } } });
  });

  it('sends on its own once the batching window has passed', async () => {
    const quick = await startFakeStripe({ customers: [], webhook: { url: fake.webhooks.url, secrets: SECRETS, batchWindowMs: 10 } });
    try {
      await sendStream(quick, [event('cus_nobody', 'z')]);
      await quick.webhooks.delivered(1);
      expect(quick.webhooks.deliveries()[0]).toMatchObject({ status: 200 });
    } finally {
      await quick.close();
    }
  });

  it('answers the direct endpoint 400 resource_missing for an unknown customer', async () => {
    const res = await sendDirect(fake, event('cus_typo', 'direct-1'));
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: 'resource_missing' });
  });

  it('answers 404 for an event id it never sent', async () => {
    const res = await call(fake, '/v2/core/events/evt_test_nothing', { method: 'GET' });
    expect(res.status).toBe(404);
    expect(res.json.error).toMatchObject({ code: 'resource_missing' });
  });
});
