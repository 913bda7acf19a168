// The demo: a burst of traffic through the example API, then a check that Stripe (the fake) recorded exactly what should bill.
import type { AddressInfo } from 'node:net';
import type { CloseResult, MeterStats } from '@metered/core';
import { meterUsage } from '@metered/express';
import { seededRandom } from '@metered/testing';
import type { MeteringStats } from '@metered/express';
import { EXPORT_UNITS, METERS, createApp } from './app';
import type { GenerateResponse } from './app';
import { DEMO_API_KEYS } from './customers';
import { startLocalStripe } from './stripe-target';

/** Requests in flight at once from the demo's client. */
const CLIENT_CONCURRENCY = 16;
/** Planned requests per customer (retries with an Idempotency-Key come on top). */
const REQUESTS_PER_CUSTOMER = 60;
const UNAUTHENTICATED_REQUESTS = 20;
const SHUTDOWN_TIMEOUT_MS = 10_000;
/** Seed of the request mix, so every run sends the same burst. */
const SEED = 20_251_125;
const WORDS = ['usage', 'based', 'billing', 'meter', 'event', 'stream', 'token', 'invoice', 'customer', 'api'];

interface PlannedRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** The API key sent (undefined: no Authorization header). */
  readonly apiKey: string | undefined;
  readonly body?: { prompt: string };
  readonly idempotencyKey?: string;
}

interface Outcome {
  readonly request: PlannedRequest;
  readonly status: number;
  readonly body: unknown;
}

/** One line of the result table: one customer on one meter. */
export interface DemoRow {
  readonly customer: string;
  readonly meter: string;
  /** Requests sent with this customer's key that should bill on this meter (retries collapsed). */
  readonly billableRequests: number;
  readonly expected: number;
  readonly recorded: number;
}

export interface DemoResult {
  /** True when every customer's recorded totals equal the expected ones. */
  readonly ok: boolean;
  readonly rows: readonly DemoRow[];
  readonly requestsSent: number;
  readonly metering: MeteringStats;
  readonly reporter: MeterStats;
  readonly close: CloseResult | undefined;
  readonly elapsedMs: number;
}

export interface DemoOptions {
  /** Where the report goes, line by line. @default console.log */
  log?: (line: string) => void;
}

/** The burst: every customer's mix of routes, some client retries, and requests without a valid key. */
function planRequests(): PlannedRequest[] {
  // Seeded (mulberry32): the same burst every run.
  const random = seededRandom(SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const plan: PlannedRequest[] = [];
  for (const apiKey of Object.keys(DEMO_API_KEYS)) {
    for (let i = 0; i < REQUESTS_PER_CUSTOMER; i += 1) {
      const roll = random();
      if (roll < 0.4) plan.push({ method: 'GET', path: `/v1/search?q=${pick(WORDS)}`, apiKey });
      else if (roll < 0.5) plan.push({ method: 'GET', path: '/v1/export', apiKey });
      else if (roll < 0.6) plan.push({ method: 'GET', path: '/v1/unstable', apiKey });
      else if (roll < 0.7) plan.push({ method: 'GET', path: '/health', apiKey });
      else if (roll < 0.75) plan.push({ method: 'POST', path: '/v1/generate', apiKey, body: { prompt: '' } });
      else if (roll < 0.78) plan.push({ method: 'GET', path: '/v1/no-such-route', apiKey });
      else {
        const prompt = Array.from({ length: 1 + Math.floor(random() * 12) }, () => pick(WORDS)).join(' ');
        const request: PlannedRequest = { method: 'POST', path: '/v1/generate', apiKey, body: { prompt } };
        if (random() < 0.4) {
          // A client that retries with an Idempotency-Key (its first answer was lost on the way back).
          const retried = { ...request, idempotencyKey: `${apiKey}-op-${i}` };
          plan.push(retried, retried);
        } else {
          plan.push(request);
        }
      }
    }
  }
  for (let i = 0; i < UNAUTHENTICATED_REQUESTS; i += 1) {
    plan.push({ method: 'GET', path: '/v1/search?q=free', apiKey: i % 2 === 0 ? undefined : 'stolen_or_made_up' });
  }
  // Interleave customers, as real traffic would.
  for (let i = plan.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [plan[i], plan[j]] = [plan[j]!, plan[i]!];
  }
  return plan;
}

async function send(baseUrl: string, request: PlannedRequest): Promise<Outcome> {
  const headers: Record<string, string> = {};
  if (request.apiKey !== undefined) headers.authorization = `Bearer ${request.apiKey}`;
  if (request.idempotencyKey !== undefined) headers['idempotency-key'] = request.idempotencyKey;
  if (request.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(baseUrl + request.path, {
    method: request.method,
    headers,
    body: request.body === undefined ? undefined : JSON.stringify(request.body),
  });
  const text = await response.text();
  const isJson = (response.headers.get('content-type') ?? '').includes('application/json');
  return { request, status: response.status, body: isJson ? (JSON.parse(text) as unknown) : text };
}

async function sendAll(baseUrl: string, plan: readonly PlannedRequest[]): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array<Outcome>(plan.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < plan.length; i = next++) outcomes[i] = await send(baseUrl, plan[i]!);
  };
  await Promise.all(Array.from({ length: CLIENT_CONCURRENCY }, worker));
  return outcomes;
}

/**
 * What should bill, from the API's price list and what each client was answered: a 2xx of an
 * authenticated customer, except /health; tokens as the response reported them; an export as
 * EXPORT_UNITS; one charge per Idempotency-Key.
 */
function expectedTotals(outcomes: readonly Outcome[]): Map<string, { requests: number; total: number }> {
  const expected = new Map<string, { requests: number; total: number }>();
  const seenKeys = new Set<string>();
  for (const { request, status, body } of outcomes) {
    const customer = request.apiKey === undefined ? undefined : DEMO_API_KEYS[request.apiKey];
    if (customer === undefined || status < 200 || status > 299 || request.path === '/health') continue;
    const generate = request.path === '/v1/generate';
    const meter = generate ? METERS.tokens : METERS.requests;
    if (request.idempotencyKey !== undefined) {
      const key = `${customer}\n${meter}\n${request.idempotencyKey}`;
      if (seenKeys.has(key)) continue;
      seenKeys.add(key);
    }
    const value = generate ? (body as GenerateResponse).usage.total_tokens : request.path === '/v1/export' ? EXPORT_UNITS : 1;
    const cell = expected.get(`${customer}\n${meter}`) ?? { requests: 0, total: 0 };
    cell.requests += 1;
    cell.total += value;
    expected.set(`${customer}\n${meter}`, cell);
  }
  return expected;
}

function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>, rightAligned: ReadonlySet<number>): string[] {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

/**
 * Starts the fake Stripe and the example API on 127.0.0.1 (port 0), sends the burst, shuts down
 * gracefully, and compares what should bill with what Stripe recorded, per customer and meter.
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const started = Date.now();
  const stripe = await startLocalStripe();
  const fake = stripe.fake!;
  let server: ReturnType<ReturnType<typeof createApp>['listen']> | undefined;
  let metering: ReturnType<typeof meterUsage> | undefined;
  try {
    metering = meterUsage({ reporter: stripe.reporterOptions, identifier: 'idempotency-key' });
    const app = createApp({ metering, apiKeys: DEMO_API_KEYS });
    const listening = app.listen(0, '127.0.0.1');
    server = listening;
    await new Promise<void>((resolve, reject) => {
      listening.once('listening', resolve);
      listening.once('error', reject);
    });
    const baseUrl = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;

    const plan = planRequests();
    log(`sending ${plan.length} requests for ${Object.keys(DEMO_API_KEYS).length} customers to ${baseUrl}; meter events go to ${stripe.description}`);
    const outcomes = await sendAll(baseUrl, plan);

    // Graceful shutdown: no new requests, then every pending event delivered before reading Stripe.
    await new Promise<void>((resolve, reject) => listening.close((error) => (error ? reject(error) : resolve())));
    const close = await metering.close({ timeoutMs: SHUTDOWN_TIMEOUT_MS });

    const expected = expectedTotals(outcomes);
    const recorded = fake.totals();
    const rows: DemoRow[] = [];
    for (const customer of Object.values(DEMO_API_KEYS)) {
      for (const meter of [METERS.requests, METERS.tokens]) {
        const cell = expected.get(`${customer}\n${meter}`);
        rows.push({ customer, meter, billableRequests: cell?.requests ?? 0, expected: cell?.total ?? 0, recorded: recorded[customer]?.[meter] ?? 0 });
      }
    }
    // Anyone Stripe billed who is not one of the demo's customers (there must be no one).
    for (const [customer, meters] of Object.entries(recorded)) {
      if (Object.values(DEMO_API_KEYS).includes(customer)) continue;
      for (const [meter, total] of Object.entries(meters)) rows.push({ customer, meter, billableRequests: 0, expected: 0, recorded: total });
    }
    const ok = rows.every((row) => row.expected === row.recorded);

    const byStatus = new Map<number, number>();
    for (const outcome of outcomes) byStatus.set(outcome.status, (byStatus.get(outcome.status) ?? 0) + 1);
    log(`responses: ${[...byStatus].sort(([a], [b]) => a - b).map(([status, n]) => `${n}× ${status}`).join(', ')}`);
    log('');
    for (const line of table(
      ['customer', 'meter', 'billable requests', 'expected', 'recorded by Stripe', 'match'],
      rows.map((row) => [row.customer, row.meter, String(row.billableRequests), String(row.expected), String(row.recorded), row.expected === row.recorded ? 'yes' : 'NO']),
      new Set([2, 3, 4]),
    )) {
      log(line);
    }
    const m = metering.stats();
    const r = metering.reporter.stats();
    log('');
    log(
      `middleware: ${m.seen} seen, ${m.metered} metered, ${m.skipped.total} skipped (${m.skipped.notBillable} not 2xx, ${m.skipped.noCustomer} no customer, ` +
        `${m.skipped.skippedRoute} skipped route, ${m.skipped.zeroValue} zero value, ${m.skipped.aborted} aborted, ${m.skipped.duplicate} duplicate), ${m.errors} errors`,
    );
    log(
      `reporter:   ${r.enqueued} enqueued, ${r.delivered} delivered, ${r.failed} failed, ${r.dropped.total} dropped, ` +
        `${r.requests} requests to Stripe in ${r.batchesSent} batches, ${r.retries} retries`,
    );
    const dedup = fake.stats().duplicateEvents;
    log(`stripe:     ${fake.events().length} events recorded, ${dedup} duplicate identifiers collapsed (Idempotency-Key retries)`);
    const elapsedMs = Date.now() - started;
    log('');
    log(ok ? `OK: every customer's recorded usage matches what should bill (${elapsedMs} ms)` : 'MISMATCH: recorded usage differs from what should bill');
    return { ok, rows, requestsSent: plan.length, metering: m, reporter: r, close, elapsedMs };
  } finally {
    // A demo that failed half-way still stops its server and reporter (close() is idempotent): the
    // process, or a test running the demo, exits instead of hanging on an open listener.
    if (server?.listening) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server!.close(() => resolve()));
    }
    await metering?.close({ timeoutMs: 0 });
    await stripe.close();
  }
}

if (require.main === module) {
  runDemo().then(
    (result) => {
      process.exitCode = result.ok ? 0 : 1;
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
