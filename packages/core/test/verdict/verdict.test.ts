// Stripe's verdict end to end against the fake: meter checks, the signed meter error webhook, reconciliation.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { MeterRejectedEventError, createMeterErrorWebhook, formatReconcileTable, reconcile } from '@metered/core';
import type { MeterErrorWebhook } from '@metered/core';
import type { LedgerRow } from '../../src/store/types';
import { startFakeStripe } from '@metered/testing';
import type { FakeStripe } from '@metered/testing';
import { closeReporters, reporterFor } from '../helpers';

let fake: FakeStripe;

afterEach(async () => {
  await closeReporters();
  await fake?.close();
});

describe('verifyMeters', () => {
  beforeEach(async () => {
    fake = await startFakeStripe({
      meters: [
        'api_requests',
        { event_name: 'archived', status: 'inactive' },
        { event_name: 'wrong_customer_key', customerKey: 'customer' },
        { event_name: 'wrong_value_key', valueKey: 'amount', formula: 'count' },
        // More than one page of meters: the check follows has_more.
        ...Array.from({ length: 120 }, (_, i) => `filler_${i}`),
      ],
    });
  });

  it('lists every page of meters and codes each problem', async () => {
    const { reporter } = reporterFor(fake);
    const result = await reporter.verifyMeters({ eventNames: ['api_requests', 'missing', 'archived', 'wrong_customer_key', 'wrong_value_key', 'filler_0'] });
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.eventName, p.code])).toEqual([
      ['missing', 'meter_missing'],
      ['archived', 'meter_inactive'],
      ['wrong_customer_key', 'customer_key_mismatch'],
      ['wrong_value_key', 'value_key_mismatch'],
    ]);
    const ok = result.meters.find((m) => m.eventName === 'api_requests')!;
    expect(ok).toMatchObject({ found: true, active: true, customerKey: 'stripe_customer_id', valueKey: 'value', formula: 'sum', problems: [] });
    expect(result.meters.find((m) => m.eventName === 'wrong_value_key')).toMatchObject({ formula: 'count', valueKey: 'amount', expectedValueKey: 'value' });
    expect(result.meters.find((m) => m.eventName === 'filler_0')?.found).toBe(true);
  });

  it('passes when the payload keys match the meter', async () => {
    const { reporter } = reporterFor(fake, { payloadKeys: { customer: 'customer', value: 'value' } });
    const result = await reporter.verifyMeters({ eventNames: ['wrong_customer_key'] });
    expect(result).toMatchObject({ ok: true, problems: [] });
  });

  it('refuses event names that are not strings', async () => {
    const { reporter } = reporterFor(fake);
    await expect(reporter.verifyMeters({ eventNames: 'api_requests' as unknown as string[] })).rejects.toMatchObject({ code: 'ERR_METER_INVALID_OPTION' });
  });
});

describe('the meter error webhook', () => {
  let server: Server;
  let webhook: MeterErrorWebhook;
  let processed: Array<Promise<readonly MeterRejectedEventError[]>>;

  async function startEndpoint(): Promise<string> {
    processed = [];
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const answer = webhook.handle(Buffer.concat(chunks), req.headers['stripe-signature']);
        processed.push(answer.processed);
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/stripe/webhook`;
  }

  afterEach(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('turns an unknown customer on the stream into onError with the customer, event name, identifier and code', async () => {
    fake = await startFakeStripe({ customers: ['cus_real'], webhook: { batchWindowMs: 60_000 } });
    const url = await startEndpoint();
    fake.webhooks.setUrl(url);
    const { reporter, recorded } = reporterFor(fake);
    webhook = createMeterErrorWebhook({ reporter, secrets: fake.webhooks.secrets });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_real', identifier: 'good-1' });
    const bad = reporter.report({ eventName: 'api_requests', customerId: 'cus_typo' });
    await reporter.flush();
    expect(recorded.errors).toHaveLength(0);

    const [delivery] = await fake.webhooks.flush();
    expect(delivery?.status).toBe(200);
    await Promise.all(processed);
    expect(recorded.errors).toHaveLength(1);
    const error = recorded.errors[0]!.error as MeterRejectedEventError;
    expect(error).toBeInstanceOf(MeterRejectedEventError);
    expect(error).toMatchObject({ code: 'ERR_METER_EVENT_REJECTED', identifier: bad, customerId: 'cus_typo', eventName: 'api_requests', stripeCode: 'meter_event_customer_not_found', errorCount: 1 });
    expect(error.stripeEventId).toBe(delivery!.eventId);
    // The thin event was fetched, then its meter, with the reporter's key.
    const paths = fake.requests().map((r) => `${r.method} ${r.path}`);
    expect(paths).toContain(`GET /v2/core/events/${delivery!.eventId}`);
    expect(paths.some((p) => p.startsWith('GET /v1/billing/meters/'))).toBe(true);
  });

  it('reads a connected account’s meter error event under its context (Stripe-Context), and its report stays apart from the platform’s', async () => {
    fake = await startFakeStripe({ customers: ['cus_real'], webhook: { batchWindowMs: 60_000 } });
    const url = await startEndpoint();
    fake.webhooks.setUrl(url);
    const { reporter, recorded } = reporterFor(fake);
    webhook = createMeterErrorWebhook({ reporter, secrets: fake.webhooks.secrets });
    const platform = reporter.report({ eventName: 'api_requests', customerId: 'cus_typo' });
    const connected = reporter.report({ eventName: 'api_requests', customerId: 'cus_other', account: 'acct_1Conn' });
    await reporter.flush();

    const deliveries = await fake.webhooks.flush();
    expect(deliveries.map((d) => `${d.status} ${(JSON.parse(d.body) as { context: string | null }).context ?? 'platform'}`).sort()).toEqual(['200 acct_1Conn', '200 platform']);
    await Promise.all(processed);
    const errors = recorded.errors.map((e) => e.error as MeterRejectedEventError);
    expect(errors.map((e) => `${e.code} ${e.identifier}`).sort()).toEqual([`ERR_METER_EVENT_REJECTED ${platform}`, `ERR_METER_EVENT_REJECTED ${connected}`].sort());
    // Each event, and its meter, fetched under the context the event names.
    const reads = fake.requests().filter((r) => r.method === 'GET').map((r) => [r.path.split('/').slice(0, 4).join('/'), r.headers['stripe-context'] ?? 'platform']);
    expect(reads.filter(([path]) => path === '/v2/core/events').map(([, context]) => context).sort()).toEqual(['acct_1Conn', 'platform']);
    expect(reads.filter(([path]) => path === '/v1/billing/meters').map(([, context]) => context).sort()).toEqual(['acct_1Conn', 'platform']);
  });

  it('answers 400 and processes nothing for a tampered body, a wrong secret or a stale timestamp', async () => {
    let clockMs = Date.now();
    fake = await startFakeStripe({ customers: [], now: () => clockMs, webhook: { batchWindowMs: 60_000 } });
    const url = await startEndpoint();
    fake.webhooks.setUrl(url);
    const { reporter, recorded } = reporterFor(fake);
    webhook = createMeterErrorWebhook({ reporter, secrets: fake.webhooks.secrets });
    reporter.report({ eventName: 'api_requests', customerId: 'cus_nobody' });
    await reporter.flush();
    fake.webhooks.setUrl(null);
    const [original] = await fake.webhooks.flush();
    fake.webhooks.setUrl(url);
    const post = (body: string, signature: string) => fetch(url, { method: 'POST', headers: { 'stripe-signature': signature, 'content-type': 'application/json' }, body });

    const tampered = await post(original!.body.replace('error_report_triggered', 'error_report_triggerex'), original!.signature);
    expect(tampered.status).toBe(400);
    expect(await tampered.json()).toMatchObject({ error: { code: 'ERR_METER_WEBHOOK_SIGNATURE' } });
    const wrongSecret = createMeterErrorWebhook({ reporter, secrets: 'whsec_not_the_one' });
    expect(wrongSecret.handle(original!.body, original!.signature).status).toBe(400);

    // A delivery signed ten minutes ago (the fake's clock), received now.
    fake.reset();
    reporter.report({ eventName: 'api_requests', customerId: 'cus_nobody' });
    await reporter.flush();
    clockMs -= 600_000;
    const [stale] = await fake.webhooks.flush();
    expect(stale?.status).toBe(400);
    await Promise.all(processed);
    expect(recorded.errors).toHaveLength(0);
    expect(fake.requests().some((r) => r.path.startsWith('/v2/core/events/'))).toBe(false);
  });

  it('reports a redelivered event once, and a no_meter event without a meter', async () => {
    fake = await startFakeStripe({ webhook: { batchWindowMs: 60_000 } });
    const url = await startEndpoint();
    fake.webhooks.setUrl(url);
    const { reporter, recorded } = reporterFor(fake);
    webhook = createMeterErrorWebhook({ reporter, secrets: fake.webhooks.secrets });
    const id = reporter.report({ eventName: 'not_a_meter', customerId: 'cus_a' });
    await reporter.flush();
    const [delivery] = await fake.webhooks.flush();
    await fetch(url, { method: 'POST', headers: { 'stripe-signature': delivery!.signature }, body: delivery!.body });
    await Promise.all(processed);
    expect(recorded.errors.map((e) => e.error)).toEqual([expect.objectContaining({ code: 'ERR_METER_EVENT_REJECTED', stripeCode: 'no_meter', identifier: id, eventName: 'not_a_meter', customerId: 'cus_a' })]);
  });
});

describe('reconcile', () => {
  function ledgerOf(rows: Array<[customerId: string, eventName: string, count: number, value: number]>, hour: number): LedgerRow[] {
    const zero = { count: 0, value: '0' };
    return rows.map(([customerId, eventName, count, value]) => ({ hour, customerId, eventName, accepted: { count, value: String(value) }, delivered: { count, value: String(value) }, failed: zero, dropped: zero, uncertain: zero }));
  }

  it('reports zero difference when Stripe got what the ledger delivered, and the difference when it did not', async () => {
    fake = await startFakeStripe({ meters: ['api_requests', { event_name: 'tokens', formula: 'count' }] });
    const { reporter } = reporterFor(fake);
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    for (let i = 0; i < 3; i += 1) reporter.report({ eventName: 'api_requests', customerId: 'cus_a', value: 5 });
    reporter.report({ eventName: 'tokens', customerId: 'cus_b', value: 7 });
    await reporter.flush();
    const connection = { apiKey: fake.apiKey, apiBaseUrl: fake.url, from: hour, to: hour + 3_600_000 };

    const clean = await reconcile({ ...connection, ledger: ledgerOf([['cus_a', 'api_requests', 3, 15], ['cus_b', 'tokens', 1, 7]], hour) });
    expect(clean.clean).toBe(true);
    expect(clean.rows.map((r) => [r.customerId, r.eventName, r.expected, r.stripe, r.difference])).toEqual([
      ['cus_a', 'api_requests', '15', '15', '0'],
      ['cus_b', 'tokens', '1', '1', '0'],
    ]);
    expect(formatReconcileTable(clean)).toContain('clean');

    // The ledger says two more events were delivered than Stripe holds: rows the fake never got.
    const off = await reconcile({ ...connection, ledger: () => Promise.resolve(ledgerOf([['cus_a', 'api_requests', 5, 25]], hour)) });
    expect(off.clean).toBe(false);
    expect(off.rows[0]).toMatchObject({ expected: '25', stripe: '15', difference: '-10' });
    expect(formatReconcileTable(off)).toMatch(/DIFFERENCE/);
  });

  it("lists Stripe's totals per customer without a ledger, and needs customers then", async () => {
    fake = await startFakeStripe();
    const { reporter } = reporterFor(fake);
    reporter.report({ eventName: 'api_requests', customerId: 'cus_a', value: 4 });
    await reporter.flush();
    const from = Date.now() - 60_000;
    const result = await reconcile({ apiKey: fake.apiKey, apiBaseUrl: fake.url, from, to: Date.now() + 1, customers: ['cus_a'] });
    expect(result).toMatchObject({ withLedger: false, clean: true });
    expect(result.rows).toEqual([expect.objectContaining({ customerId: 'cus_a', eventName: 'api_requests', stripe: '4', expected: undefined })]);
    await expect(reconcile({ apiKey: fake.apiKey, apiBaseUrl: fake.url, from, to: Date.now() })).rejects.toMatchObject({ code: 'ERR_METER_INVALID_OPTION', option: 'customers' });
  });
});
