// InFlight: what flush() and shutdown wait for, without a promise per request.
import { InFlight } from '../src/in-flight';

/** Whether `promise` has settled once pending callbacks have run. */
async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => {
    settled = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

describe('InFlight', () => {
  it('settles at once with nothing open', async () => {
    const inFlight = new InFlight();
    expect(inFlight.size).toBe(0);
    expect(await isSettled(inFlight.settled())).toBe(true);
  });

  it('waits for every entry open when asked, and not for one opened later', async () => {
    const inFlight = new InFlight();
    const first = inFlight.begin();
    const second = inFlight.begin();
    const settled = inFlight.settled();
    const later = inFlight.begin();
    inFlight.end(first);
    expect(await isSettled(settled)).toBe(false);
    inFlight.end(second);
    expect(await isSettled(settled)).toBe(true);
    expect(inFlight.size).toBe(1);
    inFlight.end(later);
    expect(inFlight.size).toBe(0);
  });

  it('ends an entry once: ending it again neither throws nor wakes anyone twice', async () => {
    const inFlight = new InFlight();
    const entry = inFlight.begin();
    const waits = [inFlight.settled(), inFlight.settled()];
    inFlight.end(entry);
    inFlight.end(entry);
    expect(await isSettled(Promise.all(waits))).toBe(true);
    expect(inFlight.size).toBe(0);
  });

  it('tracks a promise until it settles, fulfilled or rejected', async () => {
    const inFlight = new InFlight();
    let fail!: (error: Error) => void;
    const work = new Promise<void>((_resolve, reject) => {
      fail = reject;
    });
    inFlight.track(work);
    inFlight.track(Promise.resolve(1));
    expect(inFlight.size).toBe(2);
    const settled = inFlight.settled();
    expect(await isSettled(settled)).toBe(false);
    expect(inFlight.size).toBe(1);
    fail(new Error('the request failed'));
    await work.catch(() => undefined);
    expect(await isSettled(settled)).toBe(true);
    expect(inFlight.size).toBe(0);
  });
});
