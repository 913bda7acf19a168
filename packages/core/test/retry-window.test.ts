// The retry loop never sends again where Stripe may no longer deduplicate: 23 h after an attempt that may have landed.
import { resolveConfig } from '../src/config';
import { Counters } from '../src/delivery/counters';
import type { CredentialBreaker } from '../src/delivery/breaker';
import type { Hooks } from '../src/delivery/hooks';
import { RESEND_LIMIT_MS, RetryLoop } from '../src/delivery/retry-loop';
import { MeterUnauthorizedError, StripeApiError } from '../src/errors';

const HOUR = 3_600_000;

/** A breaker the test opens and closes; a hold moves the clock on by `holdMs`. */
function breakerOf(clock: { now: number }, holdMs: number) {
  const breaker = {
    isOpen: false,
    turn: (): Promise<boolean> => {
      clock.now += holdMs;
      breaker.isOpen = false;
      return Promise.resolve(false);
    },
    succeeded: () => undefined,
    refused: () => {
      breaker.isOpen = true;
      return true;
    },
    probeFailed: () => undefined,
  };
  return breaker;
}

function loopWith(breaker: object, options: Parameters<typeof resolveConfig>[0] = { apiKey: 'sk_test_x' }): RetryLoop {
  const config = resolveConfig({ retry: { initialDelayMs: 1, maxDelayMs: 1, maxElapsedMs: HOUR }, ...options });
  const hooks = { error: () => undefined } as unknown as Hooks;
  return new RetryLoop(config, breaker as unknown as CredentialBreaker, new Counters(), hooks, { warn: () => undefined, error: () => undefined }, new AbortController().signal);
}

/** One send: counted, then answered with the next error queued, or accepted once none is left. */
function answerWith(answers: Error[], count: () => void): Promise<void> {
  count();
  const answer = answers.shift();
  return answer === undefined ? Promise.resolve() : Promise.reject(answer);
}

/** Runs `loop` over sends answered with `answers` in turn (accepted once none is left); the outcome and how many were sent. */
async function sendThrough(loop: RetryLoop, answers: Error[]): Promise<{ outcome: unknown; sent: number }> {
  let sent = 0;
  const outcome = await loop.run(() => answerWith(answers, () => (sent += 1)));
  return { outcome, sent };
}

const serverError = () => new StripeApiError(500, 'api_error', undefined, 'boom', undefined, undefined, undefined);

describe('the retry loop and Stripe’s duplicate window', () => {
  const clock = { now: Date.parse('2026-12-01T00:00:00Z') };
  beforeEach(() => {
    jest.spyOn(Date, 'now').mockImplementation(() => clock.now);
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('does not resend after a key refusal held it past the window, once an earlier attempt may have landed', async () => {
    const breaker = breakerOf(clock, RESEND_LIMIT_MS);
    const { outcome, sent } = await sendThrough(loopWith(breaker), [serverError(), new MeterUnauthorizedError(401, undefined)]);
    // The 500 may have been processed; the key was then refused for 23 h: a third send could bill twice.
    expect(sent).toBe(2);
    expect(outcome).toMatchObject({ ok: false, aborted: false, stale: { here: expect.any(Number) } });
  });

  it('still sends after a long hold when Stripe said the earlier attempt was not processed (429)', async () => {
    const breaker = breakerOf(clock, RESEND_LIMIT_MS);
    const rateLimited = new StripeApiError(429, 'rate_limit_error', undefined, 'slow down', undefined, undefined, undefined);
    const { outcome, sent } = await sendThrough(loopWith(breaker), [rateLimited, new MeterUnauthorizedError(401, undefined)]);
    expect(sent).toBe(3);
    expect(outcome).toEqual({ ok: true, value: undefined });
  });

  it('still sends after a long hold when nothing sent before it can have landed (every attempt refused at the key)', async () => {
    const breaker = breakerOf(clock, 2 * RESEND_LIMIT_MS);
    const { outcome, sent } = await sendThrough(loopWith(breaker), [new MeterUnauthorizedError(401, undefined)]);
    expect(sent).toBe(2);
    expect(outcome).toEqual({ ok: true, value: undefined });
  });

  it('does not send what a previous process first sent longer ago than the window, and sends it within it', async () => {
    const breaker = breakerOf(clock, 0);
    let sent = 0;
    const attempt = (): Promise<void> => {
      sent += 1;
      return Promise.resolve();
    };
    const late = await loopWith(breaker).run(attempt, true, clock.now - RESEND_LIMIT_MS);
    expect(late).toMatchObject({ ok: false, stale: { here: undefined } });
    expect(sent).toBe(0);
    expect(await loopWith(breaker).run(attempt, true, clock.now - RESEND_LIMIT_MS + 1)).toEqual({ ok: true, value: undefined });
    expect(sent).toBe(1);
  });

  it('allows what the spool allows: a longer resendWithinMs sets the window for a previous process’s sends', async () => {
    const breaker = breakerOf(clock, 0);
    const loop = loopWith(breaker, { apiKey: 'sk_test_x', spool: { path: '/tmp/unused.spool', resendWithinMs: 24 * HOUR } });
    expect(await loop.run(() => Promise.resolve(undefined), true, clock.now - 23.5 * HOUR)).toEqual({ ok: true, value: undefined });
  });

  it('hands back the probe it was granted and did not use, so the next request probes the key', async () => {
    // The breaker grants this batch the probe after holding it 23 h; the batch's first send (a 500) may have landed.
    const breaker = Object.assign(breakerOf(clock, RESEND_LIMIT_MS), { probeFailed: jest.fn(), succeeded: jest.fn() });
    breaker.turn = (): Promise<boolean> => {
      clock.now += RESEND_LIMIT_MS;
      breaker.isOpen = false;
      return Promise.resolve(true);
    };
    const { outcome, sent } = await sendThrough(loopWith(breaker), [serverError(), new MeterUnauthorizedError(401, undefined)]);
    expect(outcome).toMatchObject({ ok: false, stale: { here: expect.any(Number) } });
    expect(sent).toBe(2);
    // Without this the breaker would wait for the probe's outcome for ever, and no request would go again.
    expect(breaker.probeFailed).toHaveBeenCalledTimes(1);
    expect(breaker.succeeded).not.toHaveBeenCalled();
  });
});
