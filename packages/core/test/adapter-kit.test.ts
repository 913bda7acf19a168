// The adapter kit without a framework: what meterRequest() decides for one request, and what it reports when a step fails.
import { MeterAdapterError, claimRequest, releaseClaim, endingAtClose, responseEnding, finishedWithin, getRequestUsage, hasRequestUsage, identifierFromIdempotencyKey, meterRequest, meterRequestNow, requestUsageOf, setRequestUsage } from '@metered/core';
import type { MeterError, MeterEventInput, RequestMeteringAdapter, ResponseEnding } from '@metered/core';
import type { ServerResponse } from 'node:http';

interface FakeRequest {
  readonly state: object;
  readonly headers: Record<string, string>;
}

function adapterWith(overrides: Partial<RequestMeteringAdapter<FakeRequest>> = {}) {
  const reported: MeterEventInput[] = [];
  const errors: MeterError[] = [];
  const adapter: RequestMeteringAdapter<FakeRequest> = {
    reporter: {
      report: (event) => {
        reported.push(event);
        return 'id';
      },
      handleError: (error) => {
        errors.push(error);
      },
    },
    billAborted: false,
    resolveTimeoutMs: 50,
    idempotencyKeyHeader: undefined,
    internalStep: 'metering',
    usage: () => ({}),
    billIf: () => true,
    customer: () => 'cus_1',
    eventName: () => 'api_requests',
    value: () => 1,
    headers: (request) => request.headers,
    operation: () => 'GET /x/:id',
    describe: () => 'GET /x',
    ...overrides,
  };
  return { adapter, reported, errors };
}

const request = (headers: Record<string, string> = {}): FakeRequest => ({ state: {}, headers });

afterEach(() => {
  jest.useRealTimers();
});

describe('meterRequest', () => {
  it('fills in what the handler left unset from what another adapter handed over, field by field, or takes its several events', async () => {
    const handedOver = () => ({ eventName: 'route_event', value: 9 });
    const cases: Array<[object, Partial<MeterEventInput>]> = [
      [{ handedOver }, { eventName: 'route_event', value: 9 }],
      [{ handedOver, eventName: 'handler_event' }, { eventName: 'handler_event', value: 9 }],
      [{ handedOver, value: 4 }, { eventName: 'route_event', value: 4 }],
      [{ handedOver: () => Promise.resolve({ value: 3 }) }, { eventName: 'api_requests', value: 3 }],
    ];
    for (const [usage, expected] of cases) {
      const { adapter, reported } = adapterWith({ usage: () => usage });
      await meterRequest(adapter, request(), 1_700_000_000_000, 'completed');
      expect(reported).toEqual([expect.objectContaining(expected)]);
    }
    const several = adapterWith({ usage: () => ({ handedOver: () => [{ eventName: 'in', value: 2 }, { eventName: 'out', value: 5 }] }) });
    await meterRequest(several.adapter, request(), 1_700_000_000_000, 'completed');
    expect(several.reported.map((e) => [e.eventName, e.value])).toEqual([['in', 2], ['out', 5]]);
  });

  it('reports one event dated at arrival', async () => {
    const { adapter, reported } = adapterWith();
    await expect(meterRequest(adapter, request(), 1_700_000_000_000, 'completed')).resolves.toBe('metered');
    expect(reported).toEqual([{ eventName: 'api_requests', customerId: 'cus_1', value: 1, timestamp: 1_700_000_000_000, identifier: undefined }]);
  });

  it.each<[string, string, Partial<RequestMeteringAdapter<FakeRequest>>, ResponseEnding]>([
    ['skippedRoute', 'a handler opted out', { usage: () => ({ skip: true }) }, 'completed'],
    ['aborted', 'the client went away before the response started', {}, 'notStarted'],
    ['notBillable', 'billIf says no', { billIf: () => false }, 'completed'],
    ['noCustomer', 'there is no payer', { customer: () => '' }, 'completed'],
    ['zeroValue', 'the value is 0', { value: () => 0n }, 'completed'],
  ])('ends as %s when %s', async (outcome, _reason, overrides, ending) => {
    const { adapter, reported, errors } = adapterWith(overrides);
    await expect(meterRequest(adapter, request(), Date.now(), ending)).resolves.toBe(outcome);
    expect(reported).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("lets the handler's usage win over the adapter's answers", async () => {
    const req = request();
    setRequestUsage(req.state, { eventName: 'llm_tokens', value: 9 });
    const eventName = jest.fn(() => 'unused');
    const { adapter, reported } = adapterWith({ usage: (r) => getRequestUsage(r.state), eventName });
    await meterRequest(adapter, req, Date.now(), 'completed');
    expect(reported).toEqual([expect.objectContaining({ eventName: 'llm_tokens', value: 9 })]);
    expect(eventName).not.toHaveBeenCalled();
  });

  it('derives the identifier from the idempotency key header and the operation', async () => {
    const { adapter, reported } = adapterWith({ idempotencyKeyHeader: 'idempotency-key', dimensions: () => ({ tier: 'pro' }) });
    await meterRequest(adapter, request({ 'idempotency-key': 'k1' }), Date.now(), 'completed');
    expect(reported[0]).toMatchObject({ identifier: identifierFromIdempotencyKey('cus_1', 'api_requests', 'GET /x/:id', 'k1'), dimensions: { tier: 'pro' } });
  });

  it('bills a response that had started when its client left, but not one that had not (billAborted: false)', async () => {
    const { adapter, reported } = adapterWith();
    await expect(meterRequest(adapter, request(), Date.now(), 'started')).resolves.toBe('metered');
    await expect(meterRequest(adapter, request(), Date.now(), 'notStarted')).resolves.toBe('aborted');
    await expect(meterRequest({ ...adapter, billAborted: true }, request(), Date.now(), 'notStarted')).resolves.toBe('metered');
    expect(reported).toHaveLength(2);
  });

  it('never lets one idempotency key collapse two operations of one customer', () => {
    const get = identifierFromIdempotencyKey('cus_1', 'api_requests', 'GET /v1/items/:id', 'k1');
    expect(identifierFromIdempotencyKey('cus_1', 'api_requests', 'POST /v1/items/:id', 'k1')).not.toBe(get);
    expect(identifierFromIdempotencyKey('cus_1', 'api_requests', 'GET /v1/orders/:id', 'k1')).not.toBe(get);
    expect(identifierFromIdempotencyKey('cus_1', 'api_requests', 'GET /v1/items/:id', 'k1')).toBe(get);
  });

  it('names the failed step, gives up a promise after resolveTimeoutMs, and never rejects', async () => {
    jest.useFakeTimers();
    const { adapter, errors } = adapterWith({ value: () => new Promise<number>(() => undefined) });
    const outcome = meterRequest(adapter, request(), Date.now(), 'completed');
    await jest.advanceTimersByTimeAsync(50);
    await expect(outcome).resolves.toBe('error');
    expect(errors).toEqual([expect.any(MeterAdapterError)]);
    expect(errors[0]!.message).toBe('Could not meter GET /x: the value resolver failed: the value resolver did not settle within 50 ms');
  });

  it('rejects a customer that is not a string, and blames the adapter step for its own failures', async () => {
    const typed = adapterWith({ customer: () => 42 });
    await expect(meterRequest(typed.adapter, request(), Date.now(), 'completed')).resolves.toBe('error');
    expect(typed.errors[0]!.message).toMatch(/the customer resolver failed: returned number/);

    const broken = adapterWith({ usage: () => { throw new Error('state lost'); } });
    await expect(meterRequest(broken.adapter, request(), Date.now(), 'completed')).resolves.toBe('error');
    expect(broken.errors[0]!.message).toBe('Could not meter GET /x: the metering failed: state lost');
  });

  it('blames the metering step when the operation cannot be read', async () => {
    const { adapter, errors } = adapterWith({ idempotencyKeyHeader: 'idempotency-key', operation: () => { throw new Error('no route'); } });
    await expect(meterRequest(adapter, request({ 'idempotency-key': 'k1' }), Date.now(), 'completed')).resolves.toBe('error');
    expect(errors[0]!.message).toBe('Could not meter GET /x: the metering failed: no route');
  });

  it('logs through logFallback when handleError itself throws', async () => {
    const lines: string[] = [];
    const { adapter } = adapterWith({ billIf: () => { throw new Error('bad predicate'); }, logFallback: (line) => lines.push(line) });
    const throwing = { ...adapter, reporter: { ...adapter.reporter, handleError: () => { throw new Error('hook broke'); } } };
    await expect(meterRequest(throwing, request(), Date.now(), 'completed')).resolves.toBe('error');
    expect(lines).toEqual(['Could not meter GET /x: the billIf failed: bad predicate (and handleError threw: hook broke)']);
  });
});

describe('claimRequest', () => {
  it('gives a request to its first caller only, without a property on the request, and getRequestUsage() says so', () => {
    const req = {};
    expect(claimRequest(req)).toBe(true);
    expect(claimRequest(req)).toBe(false);
    expect(Object.getOwnPropertySymbols(req)).toEqual([]);
    expect(getRequestUsage(req)).toEqual({ claimed: true });
    setRequestUsage(req, { value: 3 });
    expect(getRequestUsage(req)).toEqual({ claimed: true, value: 3 });
    expect(requestUsageOf(req)).toEqual({ value: 3 });
    expect(getRequestUsage({})).toEqual({});
  });

  it('keeps what a handler sets beside the request, not on it, in a table every copy of core shares', () => {
    const req = {};
    expect(hasRequestUsage(req)).toBe(false);
    expect(requestUsageOf(req)).toEqual({});
    setRequestUsage(req, { eventName: 'tokens', value: 5 });
    expect(Object.getOwnPropertySymbols(req)).toEqual([]);
    expect(hasRequestUsage(req)).toBe(true);
    const registry = (globalThis as Record<symbol, unknown>)[Symbol.for('@metered/request-states')] as WeakMap<object, unknown>;
    expect(registry.get(req)).toEqual({ eventName: 'tokens', value: 5 });
  });

  it('is given up by releaseClaim() once the response ended: the registry keeps no entry for it', () => {
    const req = {};
    expect(claimRequest(req)).toBe(true);
    releaseClaim(req, { writableEnded: true });
    expect(getRequestUsage(req)).toEqual({});
    expect(claimRequest(req)).toBe(true);
    expect(claimRequest(req)).toBe(false);
  });

  it('keeps the claim of a response its client abandoned (not ended), so that a later mount cannot bill it', () => {
    const req = {};
    expect(claimRequest(req)).toBe(true);
    releaseClaim(req, { writableEnded: false });
    expect(getRequestUsage(req)).toEqual({ claimed: true });
    expect(claimRequest(req, { writableEnded: false })).toBe(false);
  });

  it('refuses to claim a request whose response already ended (a mount reached after the route answered)', () => {
    expect(claimRequest({}, { writableEnded: true })).toBe(false);
    expect(claimRequest({}, { writableEnded: false })).toBe(true);
  });

  it('is shared with every copy of core in the process', () => {
    const registry = (globalThis as Record<symbol, unknown>)[Symbol.for('@metered/claimed-requests')] as WeakSet<object>;
    const req = {};
    registry.add(req);
    expect(claimRequest(req)).toBe(false);
  });
});

describe('meterRequestNow', () => {
  it('settles at once, without a promise, when every answer is synchronous', () => {
    const { adapter, reported } = adapterWith();
    expect(meterRequestNow(adapter, request(), 1_700_000_000_000, 'completed')).toBe('metered');
    expect(reported).toEqual([expect.objectContaining({ customerId: 'cus_1', timestamp: 1_700_000_000_000 })]);
    expect(meterRequestNow({ ...adapter, billIf: () => false }, request(), Date.now(), 'completed')).toBe('notBillable');
  });

  it('reports a synchronous failure at once, as an error outcome', () => {
    const { adapter, errors } = adapterWith({ customer: () => { throw new Error('no session'); } });
    expect(meterRequestNow(adapter, request(), Date.now(), 'completed')).toBe('error');
    expect(errors[0]!.message).toBe('Could not meter GET /x: the customer resolver failed: no session');
  });

  it('continues after each asynchronous answer with its value, and names a rejected one', async () => {
    const { adapter, reported } = adapterWith({ customer: () => Promise.resolve('cus_async'), value: () => Promise.resolve(3) });
    const pending = meterRequestNow(adapter, request(), Date.now(), 'completed');
    expect(pending).toBeInstanceOf(Promise);
    expect(reported).toEqual([]);
    await expect(pending).resolves.toBe('metered');
    expect(reported).toEqual([expect.objectContaining({ customerId: 'cus_async', value: 3 })]);

    const failing = adapterWith({ eventName: () => Promise.reject(new Error('lookup failed')) });
    await expect(meterRequestNow(failing.adapter, request(), Date.now(), 'completed')).resolves.toBe('error');
    expect(failing.errors[0]!.message).toBe('Could not meter GET /x: the eventName resolver failed: lookup failed');
    expect(failing.reported).toEqual([]);
  });
});

describe('finishedWithin', () => {
  it('says whether the work finished within the grace, and waits no longer than it', async () => {
    jest.useFakeTimers();
    let finish!: () => void;
    const late = finishedWithin(new Promise<void>((resolve) => (finish = resolve)), 100);
    const onTime = finishedWithin(Promise.resolve(), 100);
    await expect(onTime).resolves.toBe(true);
    await jest.advanceTimersByTimeAsync(100);
    await expect(late).resolves.toBe(false);
    finish();
    expect(jest.getTimerCount()).toBe(0);
    await expect(finishedWithin(new Promise<void>(() => undefined), 0)).resolves.toBe(false);
  });
});

describe('endingAtClose', () => {
  it('tells a completed response from one cut short after or before its headers, asking about the grace only when there is one', async () => {
    const never = jest.fn(() => Promise.resolve(true));
    expect(endingAtClose(true, true, 100, never)).toBe('completed');
    expect(endingAtClose(false, true, 0, never)).toBe('started');
    expect(endingAtClose(false, false, 0, never)).toBe('notStarted');
    expect(never).not.toHaveBeenCalled();
    await expect(endingAtClose(false, false, 100, () => Promise.resolve(true))).resolves.toBe('completed');
    await expect(endingAtClose(false, true, 100, () => Promise.resolve(false))).resolves.toBe('started');
    await expect(endingAtClose(false, false, 100, () => Promise.resolve(false))).resolves.toBe('notStarted');
  });
});

describe('responseEnding', () => {
  /** What responseEnding() reads of a response, and the end() it wraps while the grace runs. */
  function response(writableEnded: boolean, headersSent: boolean): ServerResponse & { ended: number } {
    const res = {
      writableEnded,
      headersSent,
      ended: 0,
      end(this: { ended: number }): unknown {
        this.ended += 1;
        return this;
      },
    };
    return res as unknown as ServerResponse & { ended: number };
  }

  it('settles at once for a response its handler ended, and for a client that left when there is no grace', () => {
    expect(responseEnding(response(true, true), 1_000)).toBe('completed');
    expect(responseEnding(response(false, true), 0)).toBe('started');
    expect(responseEnding(response(false, false), 0)).toBe('notStarted');
  });

  it('bills as completed a response its handler still ends within the grace, and puts end() back', async () => {
    const res = response(false, false);
    const ownEnd = res.end;
    const ending = responseEnding(res, 60_000);
    expect(res.end).not.toBe(ownEnd);
    res.end();
    await expect(ending).resolves.toBe('completed');
    expect(res.ended).toBe(1);
    expect(res.end).toBe(ownEnd);
  });

  it('keeps how far the response got once the grace runs out', async () => {
    jest.useFakeTimers();
    try {
      const res = response(false, true);
      const ownEnd = res.end;
      const ending = responseEnding(res, 50);
      jest.advanceTimersByTime(50);
      await expect(ending).resolves.toBe('started');
      expect(res.end).toBe(ownEnd);
    } finally {
      jest.useRealTimers();
    }
  });
});
