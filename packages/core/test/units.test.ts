// The small parts: ring buffer, pacer, backoff, retry classification, Retry-After, redaction.
import { MemoryEventStore } from '../src/store/queue';
import type { QueuedEvent } from '../src/store/queue';
import { Pacer } from '../src/delivery/pacer';
import { backoffDelay, isRetriable } from '../src/delivery/retry';
import { parseRetryAfter } from '../src/transport/http';
import { StripeApiError, redactSecrets } from '@metered/core';
import { registerSecret } from '../src/redact';
import { deriveIdentifier } from '../src/identifier';

function ev(seq: number): QueuedEvent {
  return { eventName: 'e', customerId: 'c', value: '1', timestamp: 0, identifier: `i${seq}`, dimensions: undefined, seq };
}

describe('MemoryEventStore', () => {
  it('keeps FIFO order across growth, wrap-around, take, unshift and shrink', () => {
    const store = new MemoryEventStore();
    const expected: number[] = [];
    let next = 0;
    for (let round = 0; round < 5; round += 1) {
      for (let i = 0; i < 3000; i += 1) {
        store.push(ev(next));
        expected.push(next);
        next += 1;
      }
      const taken = store.take(2500);
      expect(taken.map((e) => e.seq)).toEqual(expected.splice(0, 2500));
      store.unshift(taken.slice(-10));
      expected.unshift(...taken.slice(-10).map((e) => e.seq));
      expect(store.shift()?.seq).toBe(expected.shift());
      expect(store.size).toBe(expected.length);
    }
    expect(store.drain().map((e) => e.seq)).toEqual(expected);
    expect(store.size).toBe(0);
    expect(store.shift()).toBeUndefined();
  });
});

describe('Pacer', () => {
  it('allows at most rate·t + burst requests in t, and holds everything during a pause', () => {
    let now = 1_000_000;
    const pacer = new Pacer(100, () => now);
    let granted = 0;
    for (let step = 0; step < 2000; step += 1) {
      if (pacer.tryTake() === 0) granted += 1;
      now += 1; // 2 seconds in 1 ms steps
    }
    expect(granted).toBeGreaterThanOrEqual(199);
    expect(granted).toBeLessThanOrEqual(201);

    pacer.pauseUntil(now + 5000);
    expect(pacer.tryTake()).toBe(5000);
    now += 5000;
    expect(pacer.tryTake()).toBe(0);
  });

  it('says how long to wait for the next token', () => {
    const now = 0;
    const pacer = new Pacer(20, () => now);
    expect(pacer.tryTake()).toBe(0);
    expect(pacer.tryTake()).toBe(50);
  });
});

describe('retry policy', () => {
  const api = (status: number, shouldRetry?: boolean) => new StripeApiError(status, undefined, undefined, undefined, undefined, shouldRetry, undefined);

  it.each([
    [api(429), true],
    [api(409), true],
    [api(500), true],
    [api(503), true],
    [api(400), false],
    [api(401), false],
    [api(404), false],
    [api(500, false), false],
    [new StripeApiError(401, 'temporary_session_expired', 'billing_meter_event_session_expired', 'expired', undefined, undefined, undefined), true],
    [api(400, true), true],
    [Object.assign(new Error('reset'), { code: 'ECONNRESET' }), true],
    [Object.assign(new Error('timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' }), true],
    [new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }), true],
    [new TypeError('bug'), false],
  ])('%p retriable: %p', (error, expected) => {
    expect(isRetriable(error)).toBe(expected);
  });

  it('draws full-jitter delays under an exponential bound capped at maxDelay', () => {
    expect(backoffDelay(1, 100, 1000, () => 0.999)).toBe(99);
    expect(backoffDelay(3, 100, 1000, () => 0.999)).toBe(399);
    expect(backoffDelay(10, 100, 1000, () => 0.999)).toBe(999);
    expect(backoffDelay(50, 100, 1000, () => 0)).toBe(0);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});

describe('secrets', () => {
  it('redacts keys, bearer credentials and registered tokens', () => {
    const forget = registerSecret('opaque.session-token.123');
    const text = 'key sk_live_abcDEF123 and rk_test_x1 header Bearer abc.def token opaque.session-token.123 and ek_test_sessiontoken123';
    const out = redactSecrets(text);
    expect(out).not.toMatch(/abcDEF123|rk_test_x1|abc\.def|session-token|sessiontoken123/);
    forget();
    expect(redactSecrets('opaque.session-token.123')).toBe('opaque.session-token.123');
  });

  it('keeps secrets out of StripeApiError messages', () => {
    const error = new StripeApiError(401, 'invalid_request_error', undefined, 'Invalid API Key provided: sk_test_abcdefgh1234', undefined, undefined, undefined);
    expect(error.message).not.toContain('abcdefgh1234');
  });
});

describe('derived identifiers', () => {
  it('are stable, part-separated and at most 100 characters', () => {
    expect(deriveIdentifier('a', 'b')).toBe(deriveIdentifier('a', 'b'));
    expect(deriveIdentifier('ab', 'c')).not.toBe(deriveIdentifier('a', 'bc'));
    expect(deriveIdentifier('x'.repeat(500)).length).toBeLessThanOrEqual(100);
  });
});
