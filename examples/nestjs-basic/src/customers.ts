// The demo's accounts: API keys a client sends, and the Stripe customer each one bills.

/** A signed-in API client, as the guard puts it on `request.user`. */
export interface ApiClient {
  readonly name: string;
  /** Read by @metered/nestjs's default customer resolver. */
  readonly stripeCustomerId: string;
}

/**
 * API key → client. With real Stripe, point the customers at ones in your account with
 * DEMO_CUSTOMER_ALICE / DEMO_CUSTOMER_BOB.
 */
export function loadClients(env: NodeJS.ProcessEnv = process.env): ReadonlyMap<string, ApiClient> {
  return new Map([
    ['demo-key-alice', { name: 'alice', stripeCustomerId: env.DEMO_CUSTOMER_ALICE ?? 'cus_demo_alice' }],
    ['demo-key-bob', { name: 'bob', stripeCustomerId: env.DEMO_CUSTOMER_BOB ?? 'cus_demo_bob' }],
  ]);
}
