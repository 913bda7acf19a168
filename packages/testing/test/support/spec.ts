// Test glue: the fake's traffic must match Stripe's spec after every test that uses this.
import type { FakeStripe } from '../../src';
import { trafficProblems } from '../../src/stripe-spec';

export { SPEC_PATH, loadStripeSpec as loadSpec, specProblems } from '../../src/stripe-spec';

/** Every exchange in the fake's log conforms to the spec. */
export function expectTrafficMatchesSpec(fake: FakeStripe): void {
  expect(trafficProblems(fake)).toEqual([]);
}

/** The afterEach of a suite over one fake: check its traffic, then reset it (and run `alsoReset`) even when the check failed. */
export function expectTrafficMatchesSpecThenReset(fake: FakeStripe, alsoReset?: () => void): void {
  try {
    expectTrafficMatchesSpec(fake);
  } finally {
    // Reset even when the check failed, so one failure does not spill into the next test.
    fake.reset();
    alsoReset?.();
  }
}
