// The fake Stripe server: two listeners (API host, meter-events host), the request pipeline, and the endpoint handlers.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

import { MAX_BODY_BYTES, resolveConfig } from './config';
import type { ResolvedConfig } from './config';
import {
  injectedError,
  invalidFields,
  invalidRequest,
  rateLimited,
  sessionExpired,
  stripeError,
  unauthorized,
  unrecognizedUrl,
} from './errors';
import type { ErrorAnswer } from './errors';
import { EventLedger } from './event-ledger';
import { Faults } from './faults';
import type { OutcomeRule } from './faults';
import { Meters } from './meter-registry';
import { randomId } from './random';
import { RateLimiter } from './rate-limiter';
import { RequestLog, redactHeaders, redactResponse } from './request-log';
import { SessionStore } from './sessions';
import { WebhookEmitter } from './webhook-emitter';
import type {
  AdjustmentRecord,
  FakeEndpoint,
  FakeStripe,
  FakeStripeOptions,
  FakeStripeStats,
  FaultKind,
  HostKind,
  LoggedRequest,
  MeterEventRecord,
  MeterEventSessionObject,
  MeterTotals,
  FakeMeter,
  RejectedEventRecord,
  TotalsFilter,
} from './types';
import { checkStreamShape, customerOf, eventShapeError, eventTimeMs, meterViolation, noCustomer, valueOrTimeViolation } from './validation';
import type { EventInput, RuleViolation } from './validation';

/** A response the pipeline will send: a JSON body and extra headers. */
interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** One request on its way through the pipeline. */
interface Exchange {
  readonly host: HostKind;
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly endpoint: FakeEndpoint | null;
  readonly headers: IncomingHttpHeaders;
  /** The `Stripe-Context` header: the connected account the request acts for; undefined for the key's own account. */
  readonly context: string | undefined;
  readonly rawBody: string;
  /** Parsed JSON; undefined for an empty body; `INVALID_JSON` when unparsable. */
  readonly body: unknown;
  readonly tooLarge: boolean;
  readonly time: number;
  /** Runs when the response is finished or the connection closes: releases concurrency locks. */
  readonly cleanups: Array<() => void>;
}

type Handler = (ex: Exchange) => Answer;

const INVALID_JSON = Symbol('invalid-json');
const EMPTY_OBJECT_JSON = '{}';
const V1_LIST_LIMIT_MAX = 100;
const V1_LIST_DEFAULT_LIMIT = 10;

const PATHS: ReadonlyArray<readonly [string, FakeEndpoint]> = [
  ['/v2/billing/meter_events', 'meter_events'],
  ['/v2/billing/meter_event_session', 'meter_event_session'],
  ['/v2/billing/meter_event_stream', 'meter_event_stream'],
  ['/v2/billing/meter_event_adjustments', 'meter_event_adjustments'],
];
const SUMMARIES_PATH = /^\/v1\/billing\/meters\/([^/]+)\/event_summaries$/;
const METER_PATH = /^\/v1\/billing\/meters\/([^/]+)$/;
const EVENT_PATH = /^\/v2\/core\/events\/([^/]+)$/;

function endpointOf(path: string): FakeEndpoint | null {
  for (const [p, endpoint] of PATHS) if (p === path) return endpoint;
  if (path === '/v1/billing/meters' || SUMMARIES_PATH.test(path) || METER_PATH.test(path)) return 'meters';
  if (EVENT_PATH.test(path)) return 'events';
  return null;
}

/** The customer rule: with a customer list, an id outside it names no customer (Stripe: meter_event_customer_not_found). */
function unknownCustomer(customers: ReadonlySet<string> | null, customer: string): RuleViolation | null {
  if (customers === null || customers.has(customer)) return null;
  // The synchronous code is Stripe's usual answer for an id naming no object; its meter event docs do not list one.
  return { syncCode: 'resource_missing', asyncCode: 'meter_event_customer_not_found', message: `No such customer: '${customer}'` };
}

function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? `\u0000bigint:${value.toString()}\u0000` : value;
}

/** JSON with bigints written as exact number literals, as Stripe writes large aggregates. */
function toJson(body: unknown): { text: string; exact: boolean } {
  const text = JSON.stringify(body, bigintReplacer);
  if (!text.includes('\\u0000bigint:')) return { text, exact: false };
  return { text: text.replace(/"\\u0000bigint:(-?\d+)\\u0000"/g, '$1'), exact: true };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function contextOf(headers: IncomingHttpHeaders): string | undefined {
  const context = headers['stripe-context'];
  return typeof context === 'string' && context.length > 0 ? context : undefined;
}

function bearer(headers: IncomingHttpHeaders): string | null | undefined {
  const auth = headers.authorization;
  if (auth === undefined || auth.length === 0) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
  return match === null ? null : (match[1] ?? null);
}

function readBody(req: IncomingMessage): Promise<{ text: string; tooLarge: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Keep draining past the limit so the keep-alive connection stays usable for the 400.
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolve({ text: chunks.length === 0 ? '' : Buffer.concat(chunks).toString('utf8'), tooLarge }));
    req.on('error', reject);
  });
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function baseUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

class FakeStripeServer implements FakeStripe {
  readonly meters: Meters;
  readonly faults: Faults;
  readonly webhooks: WebhookEmitter;
  url = '';
  meterEventsUrl = '';
  port = 0;
  meterEventsPort = 0;

  private readonly ledger = new EventLedger();
  private readonly sessions: SessionStore;
  private readonly log: RequestLog;
  private readonly limiter: RateLimiter | null;
  private readonly locks = new Set<string>();
  private readonly apiServer: Server;
  private readonly meterServer: Server;
  private readonly apiRoutes: Map<string, Handler>;
  private requestCount = 0;
  private closing: Promise<void> | null = null;

  constructor(private readonly config: ResolvedConfig) {
    this.meters = new Meters(() => Math.floor(config.now() / 1000), config.livemode);
    for (const meter of config.meters) this.meters.add(meter);
    this.sessions = new SessionStore(config.now, config.sessionTtlMs, config.livemode);
    this.faults = new Faults(config.seed, () => this.sessions.expireAll());
    this.log = new RequestLog(config.maxLoggedRequests);
    this.limiter = config.rateLimit === null ? null : new RateLimiter(config.rateLimit, config.now);
    this.webhooks = new WebhookEmitter({ ...config.webhook, livemode: config.livemode, now: config.now });
    this.apiRoutes = new Map<string, Handler>([
      ['POST meter_events', (ex) => this.createMeterEvent(ex)],
      ['POST meter_event_session', (ex) => this.createSessionAnswer(ex)],
      ['POST meter_event_adjustments', (ex) => this.createAdjustment(ex)],
      ['GET meters', (ex) => this.listMetersOrSummaries(ex)],
      ['GET events', (ex) => this.retrieveEvent(ex)],
    ]);
    this.apiServer = this.createListener('api');
    this.meterServer = this.createListener('meter_events');
  }

  get apiKey(): string {
    return this.config.apiKey;
  }

  async start(): Promise<void> {
    const { host } = this.config;
    this.port = await listen(this.apiServer, this.config.port, host);
    try {
      this.meterEventsPort = await listen(this.meterServer, this.config.meterEventsPort, host);
    } catch (error) {
      this.apiServer.close();
      throw error;
    }
    this.url = baseUrl(host, this.port);
    this.meterEventsUrl = baseUrl(host, this.meterEventsPort);
  }

  events(): MeterEventRecord[] {
    return this.ledger.events();
  }

  rejected(): RejectedEventRecord[] {
    return this.ledger.rejected();
  }

  adjustments(): AdjustmentRecord[] {
    return this.ledger.adjustments();
  }

  totals(filter?: TotalsFilter): MeterTotals<number> {
    return this.ledger.totals(filter);
  }

  exactTotals(filter?: TotalsFilter): MeterTotals<bigint> {
    return this.ledger.exactTotals(filter);
  }

  requests(): LoggedRequest[] {
    return this.log.list();
  }

  stats(): FakeStripeStats {
    const counts = this.ledger.counts();
    return Object.freeze({
      requests: this.requestCount,
      acceptedEvents: counts.accepted,
      rejectedEvents: counts.rejected,
      duplicateEvents: counts.duplicates,
    });
  }

  createSession(account?: string): MeterEventSessionObject {
    return this.sessions.create(account);
  }

  reset(): void {
    this.ledger.clear();
    this.log.clear();
    this.faults.clear();
    this.limiter?.reset();
    this.webhooks.clear();
    this.requestCount = 0;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Parked responses would keep their sockets (and close()) waiting forever.
      this.faults.clear();
      const closed = Promise.all(
        [this.apiServer, this.meterServer].map(
          (server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())),
        ),
      );
      this.apiServer.closeAllConnections();
      this.meterServer.closeAllConnections();
      await Promise.all([closed, this.webhooks.close()]);
    })();
    return this.closing;
  }

  private createListener(host: HostKind): Server {
    const server = createServer((req, res) => {
      this.handle(host, req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          const message = error instanceof Error ? error.message : String(error);
          this.send(res, { status: 500, body: { error: { type: 'api_error', code: 'internal_server_error', message: `Fake Stripe failed: ${message}` } } });
        } else res.destroy();
      });
    });
    // Longer than the idle timeout of common clients, so keep-alive connections are closed by the client side.
    server.keepAliveTimeout = 65_000;
    return server;
  }

  private async handle(host: HostKind, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const time = this.config.now();
    const cleanups: Array<() => void> = [];
    res.once('close', () => {
      for (const cleanup of cleanups.splice(0)) cleanup();
    });
    this.requestCount++;

    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const query = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
    const { text, tooLarge } = await readBody(req);
    let body: unknown;
    if (text.length > 0 && !tooLarge) {
      try {
        body = JSON.parse(text);
      } catch {
        body = INVALID_JSON;
      }
    }
    const ex: Exchange = {
      host,
      method: req.method ?? 'GET',
      path,
      query,
      endpoint: endpointOf(path),
      headers: req.headers,
      context: contextOf(req.headers),
      rawBody: text,
      body,
      tooLarge,
      time,
      cleanups,
    };

    let fault: FaultKind | null = null;
    let outcome: Answer | 'reset';
    const outage = this.faults.currentOutage();
    const before = outage === null && this.faults.active ? this.faults.outcome(ex.endpoint, false) : null;
    if (outage !== null) {
      fault = 'outage';
      outcome =
        outage.mode === 'reset'
          ? 'reset'
          : injectedError(outage.status, { message: 'Stripe is unavailable (a simulated outage of the fake).', defaultCode: 'service_unavailable' });
    } else if (before !== null) {
      fault = before.kind === 'fail' ? 'fail' : 'reset';
      outcome = this.faultOutcome(before, ex);
    } else {
      const wait = this.limiter !== null && ex.endpoint !== null ? this.limiter.take(ex.endpoint) : null;
      if (wait !== null) {
        fault = 'rate_limit';
        outcome = rateLimited(this.limiter?.retryAfter === true ? wait : null);
      } else {
        outcome = this.route(ex);
        const after = this.faults.active ? this.faults.outcome(ex.endpoint, true) : null;
        if (after !== null) {
          fault = after.kind === 'fail' ? 'fail_after_processing' : 'reset_after_processing';
          outcome = this.faultOutcome(after, ex);
        }
      }
    }

    const delay = this.config.latencyMs + (this.faults.active ? this.faults.delayMs(ex.endpoint) : 0);
    if (delay > 0) await this.faults.sleep(delay);
    const parked = this.faults.active ? this.faults.parkIfHeld(ex.endpoint) : null;
    if (parked !== null) await parked;

    const requestId = randomId('req_', 14);
    let wire: { text: string; exact: boolean } | null = null;
    if (outcome === 'reset') {
      // RST rather than FIN: clients see ECONNRESET, the failure a dropped connection produces.
      req.socket.resetAndDestroy();
    } else {
      wire = this.send(res, outcome, requestId, ex.headers['stripe-version']);
    }
    if (this.log.enabled) this.record(ex, requestId, outcome, wire, fault, started);
  }

  private faultOutcome(rule: OutcomeRule, ex: Exchange): Answer | 'reset' {
    if (rule.kind === 'reset') return 'reset';
    const { status, type, code, message, retryAfter } = rule.spec;
    const defaultCode = status === 409 && ex.endpoint === 'meter_events' ? 'too_many_concurrent_requests' : undefined;
    return injectedError(status, { type, code, message, retryAfter, defaultCode });
  }

  private send(res: ServerResponse, outcome: Answer, requestId?: string, version?: string | string[]): { text: string; exact: boolean } {
    // The stream answers `{}` thousands of times a second; skip the serializer for it.
    const wire = isPlainObject(outcome.body) && Object.keys(outcome.body).length === 0 ? { text: EMPTY_OBJECT_JSON, exact: false } : toJson(outcome.body);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(wire.text),
      ...outcome.headers,
    };
    if (requestId !== undefined) headers['request-id'] = requestId;
    if (typeof version === 'string') headers['stripe-version'] = version;
    res.writeHead(outcome.status, headers);
    res.end(wire.text);
    return wire;
  }

  private record(ex: Exchange, id: string, outcome: Answer | 'reset', wire: { text: string; exact: boolean } | null, fault: FaultKind | null, started: number): void {
    const logBodies = this.config.logBodies;
    let body: unknown;
    if (logBodies && ex.rawBody.length > 0) body = ex.body === INVALID_JSON || ex.tooLarge ? ex.rawBody.slice(0, 10_000) : ex.body;
    let response: unknown;
    if (logBodies && outcome !== 'reset' && wire !== null) response = redactResponse(wire.exact ? JSON.parse(wire.text) : outcome.body);
    const query: Record<string, string> = {};
    for (const [key, value] of ex.query) query[key] = value;
    this.log.push(
      Object.freeze({
        id,
        method: ex.method,
        host: ex.host,
        path: ex.path,
        query,
        endpoint: ex.endpoint,
        status: outcome === 'reset' ? null : outcome.status,
        headers: redactHeaders(ex.headers, [this.config.apiKey]),
        body,
        response,
        fault,
        time: ex.time,
        durationMs: performance.now() - started,
      }),
    );
  }

  /** Host and route dispatch, then authentication, then the endpoint. */
  private route(ex: Exchange): Answer {
    const notFound = unrecognizedUrl(ex.method, ex.path);
    if (ex.endpoint === null) return notFound;
    if (ex.endpoint === 'meter_event_stream') {
      if (ex.host !== 'meter_events' || ex.method !== 'POST') return notFound;
      const auth = this.authenticateStream(ex);
      if ('status' in auth) return auth;
      return this.checkV2Request(ex) ?? this.streamEvents(ex, auth.account);
    }
    const handler = ex.host === 'api' ? this.apiRoutes.get(`${ex.method} ${ex.endpoint}`) : undefined;
    if (handler === undefined) return notFound;
    const denied = this.authenticateApi(ex);
    if (denied !== null) return denied;
    if (ex.path.startsWith('/v2/')) {
      const malformed = this.checkV2Request(ex);
      if (malformed !== null) return malformed;
    }
    return handler(ex);
  }

  private authenticateApi(ex: Exchange): Answer | null {
    const token = bearer(ex.headers);
    if (token === undefined) {
      return unauthorized("You did not provide an API key. Provide your secret key in the Authorization header using Bearer auth ('Authorization: Bearer sk_…').");
    }
    if (token === null) return unauthorized('Invalid Authorization header: use Bearer auth with your secret key.');
    if (token === this.config.apiKey) return null;
    if (this.sessions.isToken(token)) {
      return (
        unauthorized('Meter event session tokens are only accepted by POST /v2/billing/meter_event_stream on meter-events.stripe.com; use your secret key here.')
      );
    }
    return unauthorized('Invalid API Key provided.');
  }

  /** The session's account when the token may send, or the refusal. */
  private authenticateStream(ex: Exchange): Answer | { readonly account: string | undefined } {
    const token = bearer(ex.headers);
    if (token === undefined) return unauthorized('You did not provide a meter event session token. Create one with POST /v2/billing/meter_event_session.');
    if (token === null) return unauthorized('Invalid Authorization header: use Bearer auth with a meter event session token.');
    if (token === this.config.apiKey || /^(sk|rk)_/.test(token)) {
      return (
        unauthorized('The meter event stream does not accept secret keys. Authenticate with the authentication_token of a meter event session.')
      );
    }
    const state = this.sessions.check(token);
    if (state === 'expired') return sessionExpired();
    if (state === 'unknown') return unauthorized('Invalid meter event session token.');
    const account = this.sessions.accountOf(token);
    // The token carries the context its session was created under (https://docs.stripe.com/context), so a
    // request may repeat that context or omit it. Stripe's docs say nothing about a request naming another
    // account than its session's; the fake refuses it with a 400 rather than guess which account to bill.
    if (ex.context !== undefined && ex.context !== account) {
      return invalidRequest(
        'stripe_context_mismatch',
        `This meter event session was created for ${account ?? 'the platform account'}, but the request's Stripe-Context names ${ex.context}; create a session under that Stripe-Context.`,
      );
    }
    return { account };
  }

  /** What every v2 request needs before its body is looked at: an API version and a JSON body. */
  private checkV2Request(ex: Exchange): Answer | null {
    const version = ex.headers['stripe-version'];
    if (typeof version !== 'string' || version.length === 0) {
      return invalidRequest('missing_stripe_version', 'v2 endpoints require a Stripe-Version header.');
    }
    if (ex.tooLarge) return invalidRequest('request_too_large', 'The request body is too large.');
    if (ex.rawBody.length > 0) {
      const type = ex.headers['content-type'] ?? '';
      if (!/^application\/json\b/i.test(type)) {
        return invalidRequest('invalid_content_type', 'v2 endpoints take a JSON body: send Content-Type: application/json.');
      }
      if (ex.body === INVALID_JSON) return invalidRequest('invalid_json', 'The request body is not valid JSON.');
    }
    return null;
  }

  private createMeterEvent(ex: Exchange): Answer {
    const malformed = eventShapeError(ex.body, '');
    if (malformed !== null) return invalidFields(malformed);
    const event = ex.body as EventInput;
    const found = this.meters.forEvent(event.event_name);
    const noMeter = meterViolation(found, event.event_name);
    if (noMeter !== null) return invalidRequest(noMeter.syncCode, noMeter.message);
    // meterViolation is null only for a registered, active meter.
    const meter = found!;
    const customer = customerOf(meter, event.payload);
    if (customer === undefined) return invalidRequest('payload_no_customer_defined', noCustomer(meter).message);
    const missing = unknownCustomer(this.config.customers, customer);
    if (missing !== null) return stripeError(400, { type: 'invalid_request_error', code: missing.syncCode, message: missing.message });

    // Stripe allows one in-flight call per (customer, meter); the lock lives until this response is sent.
    const lock = `${ex.context ?? ''}\u0000${event.event_name}\u0000${customer}`;
    if (this.locks.has(lock)) {
      return stripeError(409, {
        type: 'invalid_request_error',
        code: 'too_many_concurrent_requests',
        message: `Another meter event for this customer and event_name "${event.event_name}" is being processed; send them one at a time.`,
      });
    }
    this.locks.add(lock);
    ex.cleanups.push(() => this.locks.delete(lock));

    const invalid = valueOrTimeViolation(meter, event, ex.time);
    if (invalid !== null) return invalidRequest(invalid.syncCode, invalid.message);
    this.ledger.sweep(ex.time);
    const identifier = event.identifier ?? randomUUID();
    if (this.ledger.isDuplicate(identifier, ex.time, ex.context)) {
      this.ledger.countDuplicate();
      return invalidRequest('duplicate_meter_event', `A meter event with identifier "${identifier}" was already received in the past 24 hours.`);
    }
    const timestampMs = eventTimeMs(event, ex.time);
    this.ledger.accept(event.event_name, identifier, customer, event.payload[meter.valueKey]!, timestampMs, event.payload, 'direct', ex.time, meter, ex.context);
    return {
      status: 200,
      body: {
        object: 'v2.billing.meter_event',
        created: new Date(ex.time).toISOString(),
        event_name: event.event_name,
        identifier,
        livemode: this.config.livemode,
        payload: event.payload,
        timestamp: new Date(timestampMs).toISOString(),
      },
    };
  }

  /** Validates the shape synchronously; business rules are applied per event and failures only recorded, as Stripe does. */
  private streamEvents(ex: Exchange, account: string | undefined): Answer {
    const shape = checkStreamShape(ex.body);
    if (!shape.ok) return invalidFields(shape.message);
    const now = ex.time;
    this.ledger.sweep(now);
    for (const event of shape.value) {
      const identifier = event.identifier ?? randomUUID();
      const meter = this.meters.forEvent(event.event_name);
      const customer = meter === undefined ? undefined : customerOf(meter, event.payload);
      // meterViolation is null only for a registered, active meter, so `meter!` below is safe.
      const violation =
        meterViolation(meter, event.event_name) ??
        (customer === undefined ? noCustomer(meter!) : (valueOrTimeViolation(meter!, event, now) ?? unknownCustomer(this.config.customers, customer)));
      if (violation !== null) {
        const record = this.ledger.rejectFromViolation(violation, event as unknown as Record<string, unknown>, event.event_name, identifier, now, account);
        this.webhooks.add(record, meter);
        continue;
      }
      if (this.ledger.isDuplicate(identifier, now, account)) {
        this.ledger.countDuplicate();
        continue;
      }
      this.ledger.accept(event.event_name, identifier, customer!, event.payload[meter!.valueKey]!, eventTimeMs(event, now), event.payload, 'stream', now, meter!, account);
    }
    return { status: 200, body: {} };
  }

  private createSessionAnswer(ex: Exchange): Answer {
    if (ex.body !== undefined && !(isPlainObject(ex.body) && Object.keys(ex.body).length === 0)) {
      return invalidFields('POST /v2/billing/meter_event_session takes no parameters.');
    }
    return { status: 200, body: this.sessions.create(ex.context) };
  }

  private createAdjustment(ex: Exchange): Answer {
    const body = ex.body;
    if (!isPlainObject(body)) return invalidFields('The request body must be a JSON object.');
    for (const key of Object.keys(body)) {
      if (key !== 'event_name' && key !== 'type' && key !== 'cancel') return invalidFields(`${key} is not a recognized parameter.`);
    }
    if (typeof body.event_name !== 'string' || body.event_name.length === 0) {
      return invalidFields('event_name is required and must be a non-empty string.');
    }
    if (body.type !== 'cancel') return invalidFields('type is required and must be one of: cancel.');
    const cancel = body.cancel;
    if (!isPlainObject(cancel) || typeof cancel.identifier !== 'string' || cancel.identifier.length === 0) {
      return invalidRequest('invalid_cancel_configuration', 'cancel.identifier is required when type is cancel.');
    }
    for (const key of Object.keys(cancel)) {
      if (key !== 'identifier') return invalidRequest('invalid_cancel_configuration', `cancel.${key} is not a recognized parameter.`);
    }
    const id = randomId('mea_');
    this.ledger.cancel(id, body.event_name, cancel.identifier, ex.time, ex.context);
    return {
      status: 200,
      body: {
        id,
        object: 'v2.billing.meter_event_adjustment',
        cancel: { identifier: cancel.identifier },
        created: new Date(ex.time).toISOString(),
        event_name: body.event_name,
        livemode: this.config.livemode,
        // Stripe applies cancellations asynchronously and answers `pending`; the fake applies them at once.
        status: 'pending',
        type: 'cancel',
      },
    };
  }

  private listMetersOrSummaries(ex: Exchange): Answer {
    const summaries = SUMMARIES_PATH.exec(ex.path);
    if (summaries !== null) return this.listSummaries(ex, decodeURIComponent(summaries[1] ?? ''));
    const one = METER_PATH.exec(ex.path);
    return one === null ? this.listMeters(ex) : this.retrieveMeter(decodeURIComponent(one[1] ?? ''));
  }

  private retrieveMeter(id: string): Answer {
    const meter: FakeMeter | undefined = this.meters.get(id);
    if (meter === undefined || meter.id !== id) return noSuch('billing meter', id);
    return { status: 200, body: this.meters.toStripe(meter) };
  }

  /** `GET /v2/core/events/{id}`: the full event (with `data`) of a thin event the destination was sent. */
  private retrieveEvent(ex: Exchange): Answer {
    const id = decodeURIComponent(EVENT_PATH.exec(ex.path)?.[1] ?? '');
    const event = this.webhooks.event(id, ex.context);
    return event === undefined ? noSuch('event', id) : { status: 200, body: event };
  }

  private listMeters(ex: Exchange): Answer {
    const unknown = unknownParam(ex.query, ['limit', 'status', 'starting_after', 'ending_before']);
    if (unknown !== null) return unknown;
    const status = ex.query.get('status');
    if (status !== null && status !== 'active' && status !== 'inactive') {
      return v1Error(`Invalid status: must be one of active or inactive`, 'status');
    }
    // Stripe lists newest first.
    const meters = this.meters
      .list()
      .reverse()
      .filter((m) => status === null || m.status === status)
      .map((m) => this.meters.toStripe(m));
    return paginate(ex, meters, '/v1/billing/meters');
  }

  private listSummaries(ex: Exchange, meterId: string): Answer {
    const meter = this.meters.get(meterId);
    if (meter === undefined || meter.id !== meterId) return noSuch('billing meter', meterId);
    const unknown = unknownParam(ex.query, ['customer', 'start_time', 'end_time', 'value_grouping_window', 'limit', 'starting_after', 'ending_before']);
    if (unknown !== null) return unknown;
    const customer = ex.query.get('customer');
    if (customer === null || customer.length === 0) return v1Error('Missing required param: customer.', 'customer', 'parameter_missing');
    const times: Record<'start_time' | 'end_time', number> = { start_time: 0, end_time: 0 };
    for (const name of ['start_time', 'end_time'] as const) {
      const raw = ex.query.get(name);
      if (raw === null) return v1Error(`Missing required param: ${name}.`, name, 'parameter_missing');
      if (!/^-?\d+$/.test(raw)) return v1Error(`Invalid integer: ${raw}`, name, 'parameter_invalid_integer');
      times[name] = Number(raw);
    }
    const window = ex.query.get('value_grouping_window');
    if (window !== null && window !== 'hour' && window !== 'day') {
      return v1Error('Invalid value_grouping_window: must be one of day or hour', 'value_grouping_window');
    }
    const step = window === 'day' ? 86_400 : window === 'hour' ? 3_600 : 60;
    const unit = window === 'day' ? 'UTC day' : window === 'hour' ? 'hour' : 'minute';
    for (const name of ['start_time', 'end_time'] as const) {
      if (times[name] % step !== 0) return v1Error(`${name} must be aligned with ${unit} boundaries.`, name);
    }
    const { start_time: start, end_time: end } = times;
    if (end <= start) return v1Error('end_time must be after start_time.', 'end_time');

    const windows: Array<[number, number]> = [];
    if (window === null) windows.push([start, end]);
    else for (let from = start; from < end; from += step) windows.push([from, from + step]);
    // Newest window first, like other Stripe lists.
    const data = windows.reverse().map(([from, to]) => ({
      id: `mtrusg_${meter.id}_${from}_${to}`,
      object: 'billing.meter_event_summary',
      aggregated_value: this.ledger.aggregate(meter.id, meter.formula, customer, from * 1000, to * 1000, ex.context),
      end_time: to,
      livemode: this.config.livemode,
      meter: meter.id,
      start_time: from,
    }));
    return paginate(ex, data, `/v1/billing/meters/${meter.id}/event_summaries`);
  }
}

function noSuch(kind: string, id: string): Answer {
  return { status: 404, body: { error: { type: 'invalid_request_error', code: 'resource_missing', message: `No such ${kind}: '${id}'`, param: 'id' } } };
}

function v1Error(message: string, param: string, code?: string): ErrorAnswer {
  return stripeError(400, { type: 'invalid_request_error', ...(code === undefined ? {} : { code }), message, param });
}

function unknownParam(query: URLSearchParams, known: readonly string[]): Answer | null {
  for (const key of query.keys()) {
    if (key.startsWith('expand[') || key === 'expand') continue;
    if (!known.includes(key)) return v1Error(`Received unknown parameter: ${key}`, key, 'parameter_unknown');
  }
  return null;
}

/** A v1 list object with `limit` / `starting_after` / `ending_before` cursor pagination. */
function paginate(ex: Exchange, items: ReadonlyArray<{ id: string }>, url: string): Answer {
  const rawLimit = ex.query.get('limit');
  let limit = V1_LIST_DEFAULT_LIMIT;
  if (rawLimit !== null) {
    limit = /^\d+$/.test(rawLimit) ? Number(rawLimit) : Number.NaN;
    if (!(limit >= 1 && limit <= V1_LIST_LIMIT_MAX)) {
      return v1Error(`Invalid limit: must be between 1 and ${V1_LIST_LIMIT_MAX}`, 'limit');
    }
  }
  const after = ex.query.get('starting_after');
  const before = ex.query.get('ending_before');
  let from = 0;
  let to = items.length;
  if (after !== null) {
    const i = items.findIndex((item) => item.id === after);
    if (i === -1) return v1Error(`No such object: '${after}'`, 'starting_after', 'resource_missing');
    from = i + 1;
  }
  if (before !== null) {
    const i = items.findIndex((item) => item.id === before);
    if (i === -1) return v1Error(`No such object: '${before}'`, 'ending_before', 'resource_missing');
    to = i;
    from = Math.max(from, to - limit);
  }
  const page = items.slice(from, Math.min(to, from + limit));
  const hasMore = before !== null ? from > 0 : from + page.length < to;
  return { status: 200, body: { object: 'list', data: page, has_more: hasMore, url } };
}

/**
 * Starts a Stripe-compatible fake of the V2 billing meter event API on two local listeners.
 *
 * @example
 * const fake = await startFakeStripe({ meters: ['api_requests'] });
 * const stripe = new Stripe(fake.apiKey, { host: '127.0.0.1', port: fake.port, protocol: 'http' });
 * await stripe.v2.billing.meterEvents.create({
 *   event_name: 'api_requests',
 *   payload: { stripe_customer_id: 'cus_123', value: '1' },
 * });
 * expect(fake.totals()['cus_123']?.['api_requests']).toBe(1);
 * await fake.close();
 */
export async function startFakeStripe(options?: FakeStripeOptions): Promise<FakeStripe> {
  const server = new FakeStripeServer(resolveConfig(options));
  await server.start();
  return server;
}
