// A metering failure never reaches the response: it lands in onError as ERR_METER_ADAPTER, and the response is untouched.
import { MeterError } from '@metered/core';
import { meterUsage } from '@metered/express';
import type { MeteringMiddlewareOptions } from '@metered/express';
import type { Express } from 'express';
import request from 'supertest';
import { ALICE, EXPRESS_VERSIONS, billed, buildApp, reporterFor, useMeteringSuite } from './helpers';

/** What a client can observe of a response, minus what changes every time (Date). */
async function observe(app: Express, send: (app: Express) => request.Test): Promise<object> {
  const res = await send(app);
  return { status: res.status, body: res.text, type: res.get('content-type'), etag: res.get('etag'), length: res.get('content-length') };
}

const REQUESTS: ReadonlyArray<readonly [string, (app: Express) => request.Test]> = [
  ['a success', (app) => request(app).get('/v1/search?q=1').set(ALICE)],
  ['a handler-set value', (app) => request(app).post('/v1/generate').set(ALICE).send({ prompt: 'a b' })],
  ['a handler that throws', (app) => request(app).get('/v1/fail').set(ALICE)],
  ['an unauthenticated request', (app) => request(app).get('/v1/search')],
];

describe.each(EXPRESS_VERSIONS)('metering failures on %s', (_name, express) => {
  const suite = useMeteringSuite();

  /** The app's responses without metering: the reference every metered variant must match. */
  function unmetered(): Express {
    return buildApp(express);
  }

  const BROKEN: ReadonlyArray<readonly [string, Partial<MeteringMiddlewareOptions>, RegExp]> = [
    ['a customer resolver that throws', { customer: () => { throw new Error('session store down'); } }, /customer resolver failed: session store down/],
    ['a customer resolver that rejects', { customer: () => Promise.reject(new Error('lookup failed')) }, /customer resolver failed: lookup failed/],
    ['a customer resolver that returns a number', { customer: () => 42 as unknown as string }, /customer resolver failed: returned number/],
    ['a billIf that throws', { billIf: () => { throw new Error('bad predicate'); } }, /billIf failed: bad predicate/],
    ['an eventName resolver that throws', { eventName: () => { throw new Error('no name'); } }, /eventName resolver failed: no name/],
    ['a value report() refuses', { value: () => 1.5 }, /report\(\) failed: Invalid meter event field "value"/],
    ['an event name report() refuses', { eventName: () => 'x'.repeat(101) }, /report\(\) failed: Invalid meter event field "eventName"/],
  ];

  it.each(BROKEN)('%s leaves every response as an unmetered app sends it', async (_label, options, reason) => {
    const { reporter, errors } = reporterFor(suite.fake);
    const mw = meterUsage({ reporter, ...options });
    try {
      const reference = unmetered();
      const app = buildApp(express, [mw]);
      for (const [, send] of REQUESTS) {
        expect(await observe(app, send)).toEqual(await observe(reference, send));
      }
      await mw.flush();
      // Only the handler-set usage of /v1/generate can bypass a broken eventName or value option.
      expect(billed(suite.fake).filter((event) => event.eventName !== 'llm_tokens')).toEqual([]);
      expect(errors.length).toBeGreaterThan(0);
      for (const error of errors) {
        expect(error).toBeInstanceOf(MeterError);
        expect(error.code).toBe('ERR_METER_ADAPTER');
        expect(error.name).toBe('MeterAdapterError');
        expect(error.message).toMatch(reason);
        expect(error.cause).toBeDefined();
      }
      expect(mw.stats().errors).toBe(errors.length);
    } finally {
      await reporter.close();
    }
  });

  it('a closed reporter (report() throws MeterClosedError) leaves responses untouched', async () => {
    const { reporter, errors } = reporterFor(suite.fake);
    const mw = meterUsage({ reporter });
    await reporter.close();
    const app = buildApp(express, [mw]);
    for (const [, send] of REQUESTS) {
      expect(await observe(app, send)).toEqual(await observe(unmetered(), send));
    }
    await mw.flush();
    expect(errors.map((e) => e.code)).toEqual(['ERR_METER_ADAPTER', 'ERR_METER_ADAPTER']);
    expect((errors[0]!.cause as MeterError).code).toBe('ERR_METER_CLOSED');
    expect(errors[0]!.message).toMatch(/^Could not meter GET \/v1\/search: /);
    // The query string may carry secrets: it is never part of the message.
    expect(errors[0]!.message).not.toContain('q=1');
  });

  it('an onError hook that throws changes nothing either', async () => {
    const { reporter } = reporterFor(suite.fake, {
      onError: () => {
        throw new Error('hook broke');
      },
      logger: { warn: () => undefined, error: () => undefined },
    });
    const mw = meterUsage({ reporter, customer: () => { throw new Error('boom'); } });
    try {
      const app = buildApp(express, [mw]);
      for (const [, send] of REQUESTS) {
        expect(await observe(app, send)).toEqual(await observe(unmetered(), send));
      }
      await mw.flush();
      expect(mw.stats().errors).toBe(2);
    } finally {
      await reporter.close();
    }
  });
});
